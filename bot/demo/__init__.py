"""`svarbot demo`: the barometer on this machine, against a simulated world on loopback."""
