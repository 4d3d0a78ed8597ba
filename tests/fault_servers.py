"""Servers that misbehave on purpose, on loopback, for the fault tests (tests/test_faults_*.py).

`FaultSmtpServer` is a raw asyncio SMTP server in a background thread: it speaks enough SMTP
(EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to take mail from aiosmtplib, and each connection it
accepts follows one behaviour, taken from `plan` (one entry per new connection) and then from
`mode`:

    ok              speaks SMTP and accepts every message (recorded in `accepted`)
    tarpit          speaks SMTP correctly, one byte of every reply per `byte_seconds`
    drop_in_data    takes the start of the message after 354, then hangs up without a reply
    stall_in_data   takes the whole message, then never answers the final dot
    greet_421       greets with 421 and hangs up
    tls_garbage     offers STARTTLS, answers 220 to it, then sends bytes that are not TLS
    silent          accepts the TCP connection and never says a word

What it did is counted (`injected`: connections per behaviour), so a test can print what it
injected next to what it counted on the other side. `PostgresCluster` is a throwaway
PostgreSQL cluster (the Debian server binaries, or those in SVARBOT_TEST_PG_BIN) in a
temporary folder, on a free port, that a test may restart: the machine's shared server is
never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from types import TracebackType
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

HOST = "127.0.0.1"

Mode = Literal["ok", "tarpit", "drop_in_data", "stall_in_data", "greet_421", "tls_garbage",
               "silent"]
MODES: tuple[Mode, ...] = ("ok", "tarpit", "drop_in_data", "stall_in_data", "greet_421",
                           "tls_garbage", "silent")

#: What a TLS client gets instead of a ServerHello: plain text, as a confused server sends.
GARBAGE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Accepted:
    """One message the server answered 250 to after DATA."""

    rcpt_tos: tuple[str, ...]
    message_id: str
    connection: int


class FaultSmtpServer:
    """A misbehaving SMTP server on a free loopback port, in a thread (a context manager)."""

    def __init__(self, *, mode: Mode = "ok", byte_seconds: float = 1.0,
                 drop_after_bytes: int = 64) -> None:
        self.mode: Mode = mode
        #: Behaviours for the next connections, one each, before `mode` applies again.
        self.plan: list[Mode] = []
        self.byte_seconds = byte_seconds
        self.drop_after_bytes = drop_after_bytes
        self.host = HOST
        self.port = 0
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self.injected: Counter[str] = Counter()
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> FaultSmtpServer:
        ready = threading.Event()
        problem: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._client, HOST, 0))
                self.port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:  # reported to the starting thread
                problem.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fault-smtp", daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("the fault SMTP server did not start within 5 s")
        if problem:
            raise RuntimeError(f"the fault SMTP server did not start: {problem[0]}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop = self._thread = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)

    def __enter__(self) -> FaultSmtpServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # --- results --------------------------------------------------------------------------

    def set(self, mode: Mode, *, first: int = 0, then: Mode = "ok") -> None:
        """Behave as `mode` on the next `first` connections and `then` after (first=0: always)."""
        with self.lock:
            if first:
                self.plan, self.mode = [mode] * first, then
            else:
                self.plan, self.mode = [], mode

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.accepted)

    def message_ids(self) -> Counter[str]:
        with self.lock:
            return Counter(m.message_id for m in self.accepted)

    # --- one connection -------------------------------------------------------------------

    def _next_mode(self) -> tuple[int, Mode]:
        with self.lock:
            self.connections += 1
            mode = self.plan.pop(0) if self.plan else self.mode
            self.injected[mode] += 1
            return self.connections, mode

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number, mode = self._next_mode()
        self._writers.add(writer)
        try:
            await self._converse(number, mode, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client hung up: that is its right
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _reply(self, writer: asyncio.StreamWriter, mode: Mode, text: str) -> None:
        data = text.encode("ascii") + b"\r\n"
        if mode == "tarpit":
            for index in range(len(data)):
                writer.write(data[index:index + 1])
                await writer.drain()
                await asyncio.sleep(self.byte_seconds)
            return
        writer.write(data)
        await writer.drain()

    async def _converse(self, number: int, mode: Mode, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        if mode == "silent":
            await reader.read()  # say nothing until the client gives up
            return
        if mode == "greet_421":
            await self._reply(writer, mode, "421 4.3.2 fault.test Service not available")
            return
        await self._reply(writer, mode, "220 fault.test ESMTP")
        rcpts: list[str] = []
        while True:
            line = await reader.readline()
            if not line:
                return
            command = line.decode("ascii", "replace").strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                extensions = ["fault.test", "8BITMIME", "SMTPUTF8"]
                if mode == "tls_garbage":
                    extensions.append("STARTTLS")
                lines = [f"250-{e}" for e in extensions[:-1]] + [f"250 {extensions[-1]}"]
                await self._reply(writer, mode, "\r\n".join(lines))
            elif verb == "STARTTLS" and mode == "tls_garbage":
                await self._reply(writer, mode, "220 2.0.0 Ready to start TLS")
                await asyncio.sleep(0.05)
                writer.write(GARBAGE)
                await writer.drain()
                await reader.read(1)  # the client's ClientHello, or its hang-up
                return
            elif verb == "MAIL":
                rcpts = []
                await self._reply(writer, mode, "250 2.1.0 OK")
            elif verb == "RCPT":
                rcpts.append(command.partition(":")[2].strip().strip("<>").split(">")[0])
                await self._reply(writer, mode, "250 2.1.5 OK")
            elif verb == "DATA":
                await self._reply(writer, mode, "354 End data with <CR><LF>.<CR><LF>")
                if mode == "drop_in_data":
                    await reader.readexactly(self.drop_after_bytes)
                    return  # hang up in the middle of the message
                data = await reader.readuntil(b"\r\n.\r\n")
                if mode == "stall_in_data":
                    await reader.read()  # never answer the final dot
                    return
                self._accept(number, rcpts, data)
                await self._reply(writer, mode, "250 2.0.0 OK queued")
            elif verb in ("RSET", "NOOP"):
                await self._reply(writer, mode, "250 2.0.0 OK")
            elif verb == "QUIT":
                await self._reply(writer, mode, "221 2.0.0 Bye")
                return
            else:
                await self._reply(writer, mode, "502 5.5.2 Command not recognised")

    def _accept(self, number: int, rcpts: list[str], data: bytes) -> None:
        headers = BytesHeaderParser(policy=compat32).parsebytes(data)
        message_id = str(headers.get("Message-ID", "")).strip()
        with self.lock:
            self.accepted.append(Accepted(tuple(rcpts), message_id, number))


# --- PostgreSQL -----------------------------------------------------------------------------

def _pg_bin() -> Path:
    """Where initdb and pg_ctl are: SVARBOT_TEST_PG_BIN, else the newest Debian server."""
    named = os.environ.get("SVARBOT_TEST_PG_BIN")
    if named:
        return Path(named)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


class PostgresError(RuntimeError):
    """The throwaway cluster could not be made, started or stopped; the message says why."""


def postgres_unavailable() -> str | None:
    """Why a throwaway cluster cannot run here, or None when it can."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return (f"{PG_BIN / tool} is missing (apt-get install postgresql, or name the "
                    "folder in SVARBOT_TEST_PG_BIN)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no 'postgres' user to own the cluster"
    return None


class PostgresCluster:
    """A PostgreSQL cluster of its own in a temporary folder, on a free port, trust auth.

    As root the cluster is made and run by the 'postgres' user (PostgreSQL refuses root).
    fsync is off: nothing here must survive a power cut, and initdb is four times faster.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="svarbot-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as = (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])

    @property
    def server_url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run([*self._as, *args], capture_output=True, text=True,
                                check=False, timeout=timeout)
        if result.returncode != 0:
            raise PostgresError(f"{Path(args[0]).name} failed ({result.returncode}): "
                                f"{(result.stderr or result.stdout).strip()[-500:]}")

    def init(self) -> PostgresCluster:
        if self._as:
            shutil.chown(self.root, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        return self

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses={HOST} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o",
                  options, "-w", "-t", "30", "start")

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30",
                  "stop")

    def restart(self, mode: Literal["fast", "immediate"] = "fast",
                down_seconds: float = 0.0) -> float:
        """Stop (ending every connection), stay down `down_seconds`, start; seconds it took."""
        started = time.monotonic()
        self.stop(mode)
        time.sleep(down_seconds)  # the outage itself: nothing to poll for
        self.start()
        return time.monotonic() - started

    def remove(self) -> None:
        with contextlib.suppress(PostgresError, OSError, subprocess.SubprocessError):
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def queue_wave(factory: sessionmaker[Session], survey: str, count: int) -> None:
    """`count` invitations of the shipped questionnaire `survey` queued in the outbox, as
    the clock queues a wave: the load every fault test runs through."""
    from storage_support import TEST_KEY_TEXT, bulk_people

    from bot.channels.email.channel import EmailChannel
    from bot.config import Settings
    from bot.conversation.outgoing import SurveyContext, queue_invitations
    from flows.loader import load_shipped
    from storage.answers import AnswerStore, LinkKey
    from storage.db import transaction

    settings = Settings.model_validate({"surveys": [{"id": survey, "questionnaire": survey}]})
    bulk_people(factory, survey, count)
    with transaction(factory) as session:
        queued = queue_invitations(session, EmailChannel(settings),
                                   SurveyContext(settings=settings.surveys[0],
                                                 questionnaire=load_shipped(survey)),
                                   AnswerStore(LinkKey(TEST_KEY_TEXT.encode())),
                                   now=dt.datetime.now(dt.UTC))
    assert queued == count, f"queued {queued} of {count} invitations"
