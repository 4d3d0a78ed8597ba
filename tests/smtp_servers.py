"""A real SMTP server on loopback for tests: records what it receives and fails on request.

`SmtpSink` runs aiosmtpd in a background thread on a free port of 127.0.0.1 and records every
accepted message (envelope sender, recipients, and the exact bytes of the DATA). Faults are
injected per recipient address with `fail(address, rule)`:

    sink.fail("gone@example.org", unknown_user())      # 550 5.1.1 at RCPT, every time
    sink.fail("busy@example.org", try_later(2))        # 451 4.3.0 twice, then accepted
    sink.fail("x@example.org", closing(1))             # 421 4.7.0 once, and hang up
    sink.fail("big@example.org", too_big())            # 552 at DATA
    sink.fail("y@example.org", policy())               # 550 5.7.1 at RCPT

`drop_after = K` hangs up every connection right after its K-th accepted message (the client
sees the next command fail). `auth=("user", "secret")` offers AUTH (without TLS, loopback only)
and requires it before MAIL. `wait_for(count, timeout)` blocks until `count` messages arrived.

Run alone as a benchmark target: `python tests/smtp_servers.py sink PORT` prints "ready", then
accepts and counts messages until SIGTERM/SIGINT, when it prints the count.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
SERVER_NAME = "localhost"


@dataclass
class Rule:
    """Answer `reply` at `stage` for one recipient; `times` times (None: always).

    `close` hangs up right after the reply (as servers do after a 421).
    """

    stage: Literal["rcpt", "data"]
    reply: str
    times: int | None = None
    close: bool = False
    hits: int = field(default=0, init=False)


def unknown_user() -> Rule:
    return Rule("rcpt", "550 5.1.1 User unknown")


def try_later(times: int) -> Rule:
    return Rule("rcpt", "451 4.3.0 try later", times=times)


def closing(times: int | None = 1) -> Rule:
    return Rule("rcpt", "421 4.7.0 closing", times=times, close=True)


def too_big() -> Rule:
    return Rule("data", "552 5.3.4 message too big")


def policy() -> Rule:
    return Rule("rcpt", "550 5.7.1 relaying denied")


@dataclass(frozen=True)
class Received:
    """One accepted message; `connection` numbers the client connection it came over."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class _Handler:
    """aiosmtpd hooks; state shared with the test thread under one lock."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    def _connection(self, session: Session) -> int:
        number = getattr(session, "svarbot_connection", None)
        if number is None:
            with self.sink.lock:
                self.sink.connections += 1
                number = self.sink.connections
            session.svarbot_connection = number  # type: ignore[attr-defined]
            session.svarbot_accepted = 0  # type: ignore[attr-defined]
        return int(number)

    def _rule(self, stage: str, addresses: list[str]) -> Rule | None:
        with self.sink.lock:
            for address in addresses:
                rule = self.sink.rules.get(address.lower())
                if rule is None or rule.stage != stage:
                    continue
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                rule.hits += 1
                return rule
        return None

    @staticmethod
    def _answer(server: SMTP, rule: Rule) -> str:
        if rule.close:
            transport = server.transport
            # Hang up once the reply has been written (close() flushes the buffer first).
            asyncio.get_running_loop().call_soon(transport.close)
        return rule.reply

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        self._connection(session)
        if self.sink.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        rule = self._rule("rcpt", [address])
        if rule is not None:
            return self._answer(server, rule)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rule = self._rule("data", list(envelope.rcpt_tos))
        if rule is not None:
            return self._answer(server, rule)
        connection = self._connection(session)
        data = envelope.original_content or b""
        message = Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(data),
                           connection)
        with self.sink.changed:
            self.sink.received.append(message)
            self.sink.changed.notify_all()
        session.svarbot_accepted += 1  # type: ignore[attr-defined]
        drop_after = self.sink.drop_after
        if drop_after is not None and session.svarbot_accepted >= drop_after:  # type: ignore[attr-defined]
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 2.0.0 OK queued"


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 in a background thread (use as a context manager)."""

    def __init__(self, *, auth: tuple[str, str] | None = None) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.received: list[Received] = []
        self.rules: dict[str, Rule] = {}
        self.connections = 0
        self.drop_after: int | None = None
        self.auth = auth
        self.host = HOST
        self.port = 0
        self._controller: Controller | None = None

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.auth is not None
              and auth_data.login.decode() == self.auth[0]
              and auth_data.password.decode() == self.auth[1])
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        last: OSError | None = None
        for _ in range(5):
            port = free_port()
            kwargs: dict[str, Any] = {}
            if self.auth is not None:
                kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
            controller = Controller(_Handler(self), hostname=HOST, port=port,
                                    server_hostname=SERVER_NAME, ready_timeout=5, **kwargs)
            try:
                controller.start()
            except OSError as exc:  # the port was taken between probing and binding
                last = exc
                continue
            self._controller, self.port = controller, port
            return self
        raise RuntimeError(f"no free port for the SMTP sink: {last}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # --- faults and results ----------------------------------------------------------------

    def fail(self, address: str, rule: Rule) -> Rule:
        """Apply `rule` to mail for `address` (case-insensitive); replaces an earlier rule."""
        with self.lock:
            self.rules[address.lower()] = rule
        return rule

    @property
    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The messages once at least `count` have arrived; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"SMTP sink: {len(self.received)} of {count} "
                                         f"messages after {timeout} s")
                self.changed.wait(left)
            return list(self.received)


# --- as a separate process ------------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        return "250 OK"


async def _serve(port: int) -> int:
    counter = _Counter()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(counter, hostname=SERVER_NAME), HOST, port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), timeout=1)
    return counter.count


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "sink":
        print("usage: smtp_servers.py sink PORT", file=sys.stderr)
        return 2
    count = asyncio.run(_serve(int(argv[2])))
    print(f"received {count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


def plain_text(raw: bytes) -> str:
    """The text/plain body of a message as a mail client shows it (for tests that read what
    the sink received)."""
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    content = body.get_content()
    assert isinstance(content, str)
    return content
