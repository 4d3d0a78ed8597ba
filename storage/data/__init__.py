"""Reference data shipped with svarbot (the 2019 municipality list); see README.md here."""
