"""A throwaway Dovecot (IMAP + LMTP) on loopback for tests, and the pytest fixtures around it.

Every instance lives in its own folder with its own configuration, users, sockets, state and
mail, on free ports, so it never touches the system's Dovecot nor another instance. Start
waits for the IMAP `* OK` greeting. Stop sends SIGTERM to the master and watches the listening
sockets in /proc/net/tcp (the daemonized master lingers as a zombie here, so `kill -0` would lie,
and probing the port by connecting makes a login process wait out a 5 s handshake timeout);
it then ends the instance's remaining mail processes, so clients are dropped as by a crash.
Stats are off (`stats_writer_socket_path =`): nothing here reads them.

Failed logins are not slowed down (`auth_failure_delay = 0`, the anvil auth penalty off): a test
of a wrong password would otherwise delay every later login from 127.0.0.1 by up to 15 s.

Dovecot must be started as root (it drops privileges itself and owns mail as uid 65534). Where
it is missing or we are not root, the fixtures skip with the reason, except under `CI=true`,
where they fail: CI must not go green without having tested IMAP.

Test modules load the fixtures as a plugin: `pytest_plugins = ["dovecot"]`, and import names
from here only under `if TYPE_CHECKING:` (importing this module before pytest registers it as a
plugin would defeat assertion rewriting, which `filterwarnings = error` turns into an error).
Fixtures: `dovecot` (one server per session), `mail_user` (a fresh mailbox on it) and
`own_dovecot` (a private server for a test that stops or restarts it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
MAIL_UID = 65534
DOMAIN = "example.test"
START_DEADLINE_SECONDS = 10.0
STOP_DEADLINE_SECONDS = 10.0

_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = {instance}
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
log_path = {root}/dovecot.log
mail_location = maildir:~/Maildir
mail_uid = {uid}
mail_gid = {uid}
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
recipient_delimiter = +
mail_fsync = never
stats_writer_socket_path =
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
  default_fields = uid={uid} gid={uid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
protocol lmtp {{
  postmaster_address = postmaster@{domain}
}}
"""

_instances = itertools.count(1)


class DovecotError(RuntimeError):
    """The test Dovecot could not be started or stopped; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unavailable_reason() -> str | None:
    """Why Dovecot cannot run here, or None when it can."""
    if not Path(DOVECOT).exists():
        return f"dovecot is not installed ({DOVECOT} missing; apt-get install dovecot-imapd " \
               "dovecot-lmtpd)"
    if os.geteuid() != 0:
        return "dovecot must be started as root (it drops privileges itself)"
    return None


@dataclass(frozen=True)
class MailUser:
    """One mailbox on the test server."""

    address: str
    password: str


class Dovecot:
    """One Dovecot instance in `root`, with IMAP and LMTP on free loopback ports."""

    host = "127.0.0.1"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        self.instance = f"svarbot-test-{os.getpid()}-{next(_instances)}"
        self.config_path = root / "dovecot.conf"
        self.users_path = root / "users"

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Write the configuration and start; return once IMAP greets."""
        reason = unavailable_reason()
        if reason is not None:
            raise DovecotError(reason)
        self._prepare()
        # Output goes to a file, not a pipe: the daemonized master inherits the descriptors and
        # would keep a pipe open for as long as it runs.
        output = self.root / "start.out"
        with output.open("wb") as sink:
            result = subprocess.run([DOVECOT, "-c", str(self.config_path)], stdout=sink,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    check=False, timeout=START_DEADLINE_SECONDS)
        if result.returncode != 0:
            said = output.read_text(errors="replace").strip()
            raise DovecotError(f"dovecot did not start (exit {result.returncode}): "
                               f"{said} {self._log_tail()}")
        self._wait_for_greeting()

    def stop(self) -> None:
        """SIGTERM the master, wait until the ports are closed, then end what is left.

        Mail processes serving open connections (an IMAP client in IDLE) outlive the master
        here, so they are sent SIGTERM by pid too: a stopped server drops its clients, as a
        crashed one would.
        """
        pid = self._master_pid()
        if pid is None or not self._is_master(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE_SECONDS
        while self._port_open(self.imap_port) or self._port_open(self.lmtp_port):
            if time.monotonic() > deadline:
                raise DovecotError(f"dovecot (pid {pid}) still listens "
                                   f"{STOP_DEADLINE_SECONDS:.0f} s after SIGTERM")
            time.sleep(0.05)  # poll the port until the master has closed it
        for leftover in self._instance_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGTERM)
        while self._instance_pids():
            if time.monotonic() > deadline:
                raise DovecotError(f"dovecot processes {self._instance_pids()} survived stop")
            time.sleep(0.02)  # poll until the processes are gone
        (self.root / "run" / "master.pid").unlink(missing_ok=True)

    def restart(self) -> None:
        """Stop and start again on the same ports, with the same users and mail."""
        self.stop()
        self.start()

    # --- users and mail -------------------------------------------------------------------

    def add_user(self, local_part: str, password: str = "secret") -> MailUser:  # noqa: S107
        """A new mailbox `local_part@example.test` (or the full address given), usable at once.

        Each user has a passwd-file of their own (`users/<address>`): Dovecot looks at a shared
        file's mtime at most once a second, so a user appended right after a login would stay
        unknown for up to a second.
        """
        address = local_part if "@" in local_part else f"{local_part}@{DOMAIN}"
        if "/" in address or address.startswith("."):
            raise ValueError(f"not usable as a test address: {address!r}")
        (self.users_path / address).write_text(f"{address}:{{PLAIN}}{password}::::::\n",
                                               encoding="utf-8")
        return MailUser(address, password)

    def deliver(self, rcpt: str, raw: bytes, sender: str = f"sender@{DOMAIN}") -> None:
        """Deliver `raw` to `rcpt` over LMTP, as an MTA would."""
        with smtplib.LMTP(self.host, self.lmtp_port, local_hostname="localhost",
                          timeout=10) as lmtp:
            lmtp.sendmail(sender, [rcpt], raw)

    def client(self, user: MailUser) -> IMAPClient:
        """A logged-in IMAP connection (plain text: ssl=False) for inspecting a mailbox."""
        client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=10)
        client.login(user.address, user.password)
        return client

    # --- internals ------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        for parent in self.root.resolve().parents:
            if not parent.stat().st_mode & 0o001:
                raise DovecotError(
                    f"{parent} is not searchable by others: Dovecot's auth and mail processes "
                    "(users dovecot and nobody) could not reach the users file or the mail; "
                    "use a folder under the system temp dir, e.g. tempfile.mkdtemp()")
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chown(self.root / "mail", MAIL_UID, MAIL_UID)
        self.users_path.mkdir(exist_ok=True)
        self.config_path.write_text(_CONFIG.format(
            root=self.root, instance=self.instance, uid=MAIL_UID, imap_port=self.imap_port,
            lmtp_port=self.lmtp_port, domain=DOMAIN), encoding="utf-8")

    def _master_pid(self) -> int | None:
        try:
            text = (self.root / "run" / "master.pid").read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def _is_master(self, pid: int) -> bool:
        """Whether `pid` is still this instance's master (a stale pid file names another)."""
        try:
            return str(self.config_path).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def _instance_pids(self) -> list[int]:
        """Live (not zombie) processes of this instance, found by their process title."""
        prefix = f"dovecot-{self.instance}/".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
                zombie = "\nState:\tZ" in (entry / "status").read_text()
            except OSError:
                continue
            if title.startswith(prefix) and not zombie:
                pids.append(int(entry.name))
        return pids

    def _wait_for_greeting(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        problem = "no master.pid"
        while time.monotonic() < deadline:
            if self._master_pid() is not None:
                try:
                    with socket.create_connection((self.host, self.imap_port), timeout=2) as sock:
                        greeting = sock.recv(200)
                    if greeting.startswith(b"* OK"):
                        return
                    problem = f"unexpected greeting {greeting[:60]!r}"
                except OSError as exc:
                    problem = str(exc)
            time.sleep(0.02)  # poll for the greeting until the deadline
        raise DovecotError(f"dovecot did not greet on port {self.imap_port} within "
                           f"{START_DEADLINE_SECONDS:.0f} s: {problem} {self._log_tail()}")

    @staticmethod
    def _port_open(port: int) -> bool:
        """Whether something listens on `port`, read from /proc/net/tcp.

        Not by connecting: a connection during shutdown reaches a login process whose auth
        handshake then waits out a 5 s timeout before the process can exit.
        """
        wanted = f":{port:04X}"
        with open("/proc/net/tcp", encoding="ascii") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A = LISTEN
                    return True
        return False

    def _log_tail(self) -> str:
        try:
            lines = (self.root / "dovecot.log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "| log: " + " / ".join(lines[-3:])


def _unavailable(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
        pytest.fail(f"{message} (CI is set: the IMAP tests must run)")
    pytest.skip(message)


def start_dovecot(root: Path) -> Dovecot:
    """A started Dovecot in `root`; skip (or fail under CI) when it cannot run."""
    reason = unavailable_reason()
    if reason is not None:
        _unavailable(reason)
    server = Dovecot(root)
    try:
        server.start()
    except (DovecotError, OSError, subprocess.SubprocessError) as exc:
        with contextlib.suppress(DovecotError, OSError):
            server.stop()
        _unavailable(f"dovecot could not be started: {exc}")
    return server


@contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    """A started Dovecot in a fresh folder, stopped and removed afterwards.

    The folder is made with `tempfile.mkdtemp`, not pytest's tmp_path: pytest's base folder is
    private to root (0700), and Dovecot's unprivileged processes must reach into it.
    """
    root = Path(tempfile.mkdtemp(prefix="svarbot-dovecot-"))
    try:
        server = start_dovecot(root)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot for the whole session; tests keep apart by using their own users."""
    with running_dovecot() as server:
        yield server


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A Dovecot for this test alone (about a second more: stopping takes that long)."""
    with running_dovecot() as server:
        yield server


_users = itertools.count(1)


@pytest.fixture
def mail_user(dovecot: Dovecot) -> MailUser:
    """A fresh, empty mailbox on the session's Dovecot."""
    return dovecot.add_user(f"user{next(_users)}-{os.getpid()}")
