"""Reading replies from an IMAP mailbox, in a thread of its own.

imapclient is synchronous and not thread-safe, so one thread owns one connection and does
everything: connect, catch up, IDLE, reconnect. The rest of svarbot only sees inbox rows (and an
optional `on_stored` call, made from this thread, to wake the dispatcher).

Exactly once = fetch at least once + idempotent store + move after commit:

1. every message still in the folder is fetched with BODY.PEEK[] (plain BODY[] or RFC822 would
   set \\Seen and confuse a human looking at the same mailbox);
2. each is stored with `store_inbound` and committed (key: folder, UIDVALIDITY and UID; the
   Message-ID catches the same mail under a new UIDVALIDITY);
3. only then is it moved to the processed folder. A crash in between leaves it in the folder;
   the next catch-up finds it, the store is a no-op, and the move is done.

Because processed mail leaves the folder, "what is still in the folder" is exactly the work to
do: no last-UID bookkeeping, nothing lost when a server rewinds UIDNEXT.

What others do to the mailbox meanwhile is part of the design, not an error:

* the UIDVALIDITY changes (a rebuilt index, a migrated mailbox; the server drops the session):
  after reconnecting every message has a new UID, hence a new key; mail stored before but not
  yet moved is recognised by its Message-ID, or, lacking one, by a digest of its bytes
  (`content_id`), and is moved without being stored again;
* the processed folder is deleted: the move answers TRYCREATE, the folder is made again and
  the move repeated;
* a message is expunged by someone else between SEARCH and FETCH: the FETCH returns nothing
  (or NIL) for it, and it is skipped, neither stored nor moved; the rest of the batch goes on;
* the server restarts (in IDLE or between storing and moving): the reader reconnects, and the
  next catch-up finds the stored-but-not-moved mail as in step 3 above.

IDLE (where advertised) gives a reply within about a second; it is renewed every
`idle_renew_seconds` and a full catch-up runs every `poll_seconds` anyway, because IDLE
notifications can be lost. Two known ways are closed off: mail announced in the responses to
the reader's own commands (imapclient drops those) is found by searching again until the folder
is empty, and a notification that arrives together with the IDLE continuation (already in
imaplib's buffer, where idle_check's poll() cannot see it) is looked for right after IDLE
starts. Without IDLE the folder is polled every `poll_seconds`.
Any connection trouble (socket errors, BYE, an idle_check that keeps returning at once on a
closed socket) closes the connection and reconnects with exponential backoff (capped at 60 s).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from imapclient import IMAPClient, SocketTimeout  # type: ignore[import-untyped]
from imapclient.exceptions import IMAPClientError  # type: ignore[import-untyped]
from sqlalchemy.orm import Session, sessionmaker

from bot.config import EmailSettings, Settings
from storage.db import transaction, unavailable
from storage.health import Pulse
from storage.inbox import message_id_of, normalise_message_id, quarantine, store_inbound

log = logging.getLogger(__name__)

CHANNEL = "email"
#: Messages fetched per round trip: small, so one huge batch never holds the whole folder.
BATCH = 20
#: Seconds per idle_check: the longest stop() waits for the thread to notice.
IDLE_CHECK_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 60.0
#: A connection that lasted this long was good: the next reconnect starts the backoff afresh.
HEALTHY_SESSION_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 15.0
#: A read that takes longer than this means a dead connection (IDLE reads are not affected).
READ_TIMEOUT_SECONDS = 60.0
#: The processed folder's name in the configuration uses "/" between levels.
CONFIG_DELIMITER = "/"

_DELETED = b"\\Deleted"


class ImapConfigError(Exception):
    """The IMAP settings cannot work (no username, password variable unset)."""


# --- connections ----------------------------------------------------------------------------


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive, so a silently dropped connection is noticed even while IDLE."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def connect(settings: EmailSettings) -> IMAPClient:
    """A logged-in connection to the configured mailbox (nothing selected yet)."""
    imap = settings.imap
    if not imap.username:
        raise ImapConfigError("email.imap.username is not set")
    password = os.environ.get(imap.password_env) if imap.password_env else None
    if password is None:
        raise ImapConfigError(f"environment variable {imap.password_env or '(none)'} "
                              "(email.imap.password_env) is not set")
    client = IMAPClient(imap.host, port=imap.port, ssl=imap.ssl,
                        timeout=SocketTimeout(connect=CONNECT_TIMEOUT_SECONDS,
                                              read=READ_TIMEOUT_SECONDS))
    try:
        _keepalive(client.socket())
        client.login(imap.username, password)
    except BaseException:
        _close(client)
        raise
    return client


def _close(client: IMAPClient | None) -> None:
    """Log out if the connection still works, then make sure the socket is gone."""
    if client is None:
        return
    try:
        client.logout()
    except Exception:  # the connection is being dropped anyway
        log.debug("IMAP logout failed", exc_info=True)
        try:
            client.shutdown()
        except Exception:  # already closed
            log.debug("IMAP shutdown failed", exc_info=True)


def server_folder(client: IMAPClient, name: str) -> str:
    """`name` (levels separated by "/") spelled with the server's hierarchy delimiter."""
    listed = client.list_folders("", "")
    raw = listed[0][1] if listed else None
    delimiter = raw.decode("ascii") if isinstance(raw, bytes) else raw or CONFIG_DELIMITER
    return name.replace(CONFIG_DELIMITER, delimiter) if delimiter != CONFIG_DELIMITER else name


def ensure_folder(client: IMAPClient, folder: str) -> None:
    """Create `folder` (and subscribe to it, so mail clients show it) unless it exists."""
    if client.folder_exists(folder):
        return
    try:
        client.create_folder(folder)
    except IMAPClientError:
        if not client.folder_exists(folder):  # created meanwhile by someone else: fine
            raise
    try:
        client.subscribe_folder(folder)
    except IMAPClientError:
        log.debug("could not subscribe to the processed folder", exc_info=True)
    log.info("IMAP folder for processed mail created")


def _capabilities(client: IMAPClient) -> frozenset[bytes]:
    return frozenset(bytes(c).upper() for c in client.capabilities())


def content_id(raw: bytes) -> str:
    """A stand-in Message-ID for mail without one: the same bytes always give the same id.

    Only to recognise the same message under a new UIDVALIDITY; the domain is reserved
    (RFC 2606), so it can never be an id that anyone sent.
    """
    return f"<sha256-{hashlib.sha256(raw).hexdigest()[:40]}@svarbot.invalid>"


def _try_create(exc: IMAPClientError) -> bool:
    """Whether the server refused a COPY/MOVE because the target folder does not exist."""
    return "TRYCREATE" in str(exc).upper()


def move_messages(client: IMAPClient, uids: Sequence[int], folder: str,
                  capabilities: frozenset[bytes]) -> None:
    """Move `uids` out of the selected folder: MOVE, else COPY + \\Deleted + (UID) EXPUNGE.

    Plain EXPUNGE (no UIDPLUS) also removes other mail marked \\Deleted in the folder; it is
    the last resort only.
    """
    if not uids:
        return
    if b"MOVE" in capabilities:
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, [_DELETED], silent=True)
    if b"UIDPLUS" in capabilities:
        client.uid_expunge(uids)
    else:
        client.expunge()


# --- the reader -----------------------------------------------------------------------------


class _ConnectionLost(Exception):
    """The server said BYE or the socket is closed."""


class ImapReader:
    """Keeps the configured IMAP folder empty by storing its mail in the inbox.

    `start()` runs the loop in a daemon thread; `stop()` ends it within about a second and
    logs out. `on_stored` is called from the reader's thread after each batch that added rows,
    so it must be thread-safe (e.g. `loop.call_soon_threadsafe(...)`). `idling` is set while the
    connection is in IDLE (tests and health checks use it).
    """

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session], *,
                 on_stored: Callable[[], None] | None = None,
                 now: Callable[[], dt.datetime] | None = None,
                 backoff_seconds: float = 1.0) -> None:
        self._settings = settings.email
        self._imap = settings.email.imap
        self._factory = session_factory
        self._on_stored = on_stored
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._backoff_initial = backoff_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: IMAPClient | None = None
        self._client_lock = threading.Lock()
        self.idling = threading.Event()
        #: Connections made so far (a reconnect counts); for tests and the status line.
        self.connections = 0
        #: Rows this reader added to the inbox.
        self.stored = 0
        self._pulse = Pulse(session_factory, "imap", detail=self._imap.folder)

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread (once)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="imap-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to log out and end; wait up to `timeout` seconds for it."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(min(timeout, 2.0))
        if thread.is_alive():
            # Blocked in a read on a stuck connection: pull the socket from under it.
            with self._client_lock:
                if self._client is not None:
                    try:
                        self._client.socket().shutdown(socket.SHUT_RDWR)
                    except OSError:
                        log.debug("IMAP socket already closed", exc_info=True)
            thread.join(max(timeout - 2.0, 0.1))
        if thread.is_alive():
            log.warning("IMAP reader did not stop within %.0f s", timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff_initial
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with self._connection() as client:
                    self._session(client)
            except ImapConfigError as exc:
                # the message names the setting; a traceback would add nothing
                log.error("IMAP reader cannot connect: %s", exc)  # noqa: TRY400
            except (OSError, IMAPClientError, _ConnectionLost) as exc:
                if not self._stop.is_set():
                    log.warning("IMAP connection lost (%s: %s); reconnecting in %.1f s",
                                type(exc).__name__, exc, backoff)
            except Exception as exc:  # a bug or a database outage: keep the reader alive, retry
                reason = unavailable(exc)
                if reason is None:
                    log.exception("IMAP reader failed; reconnecting in %.1f s", backoff)
                else:  # the mail stays on the server until it can be stored
                    log.error("IMAP reader: the database cannot be used (%s); the mail stays "  # noqa: TRY400
                              "in the folder, trying again in %.1f s", reason, backoff)
            if self._stop.is_set():
                break
            if time.monotonic() - started > HEALTHY_SESSION_SECONDS:
                backoff = self._backoff_initial  # the connection did work: retry soon
            self._stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_CAP_SECONDS)
        log.info("IMAP reader stopped")

    @contextmanager
    def _connection(self) -> Iterator[IMAPClient]:
        client = connect(self._settings)
        with self._client_lock:
            self._client = client
        self.connections += 1
        try:
            yield client
        finally:
            self.idling.clear()
            with self._client_lock:
                self._client = None
            _close(client)

    def _session(self, client: IMAPClient) -> None:
        """One connection's life: select, catch up, then IDLE or poll until stop or error."""
        capabilities = self._capabilities(client)
        processed = server_folder(client, self._imap.processed_folder)
        folder = server_folder(client, self._imap.folder)
        if processed.lower() == folder.lower():
            raise ImapConfigError("email.imap.processed_folder must differ from folder")
        ensure_folder(client, processed)
        selected = client.select_folder(folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        log.info("IMAP folder selected (%s messages)", selected.get(b"EXISTS", "?"))
        self._catch_up(client, uidvalidity, processed, capabilities)
        if b"IDLE" in capabilities:
            self._idle_loop(client, uidvalidity, processed, capabilities)
        else:
            self._poll_loop(client, uidvalidity, processed, capabilities)

    def _capabilities(self, client: IMAPClient) -> frozenset[bytes]:
        """What the server offers after login (a seam for tests of the fallbacks)."""
        return _capabilities(client)

    def _idle_loop(self, client: IMAPClient, uidvalidity: int, processed: str,
                   capabilities: frozenset[bytes]) -> None:
        last_full = time.monotonic()
        while not self._stop.is_set():
            client.idle()
            self.idling.set()
            idle_started = time.monotonic()
            try:
                # A notification sent together with the continuation is already buffered,
                # where idle_check (which polls the socket) cannot see it: go and look now.
                while not self._stop.is_set() and not _unread_data(client):
                    checked = time.monotonic()
                    responses = client.idle_check(timeout=IDLE_CHECK_SECONDS)
                    if any(_is_bye(r) for r in responses):
                        raise _ConnectionLost("server said BYE")
                    if any(_is_new_mail(r) for r in responses):
                        break
                    now = time.monotonic()
                    if not responses and now - checked < IDLE_CHECK_SECONDS / 2:
                        break  # returned at once with nothing: EOF; idle_done will tell
                    if (now - idle_started >= self._imap.idle_renew_seconds
                            or now - last_full >= self._imap.poll_seconds):
                        break
            finally:
                self.idling.clear()
            _, responses = client.idle_done()
            if any(_is_bye(r) for r in responses):
                raise _ConnectionLost("server said BYE")
            if self._stop.is_set():
                return
            self._catch_up(client, uidvalidity, processed, capabilities)
            last_full = time.monotonic()

    def _poll_loop(self, client: IMAPClient, uidvalidity: int, processed: str,
                   capabilities: frozenset[bytes]) -> None:
        while not self._stop.wait(self._imap.poll_seconds):
            self._catch_up(client, uidvalidity, processed, capabilities)

    # --- catching up ----------------------------------------------------------------------

    def _catch_up(self, client: IMAPClient, uidvalidity: int, processed: str,
                  capabilities: frozenset[bytes]) -> None:
        """Store and move out everything in the folder (not yet marked \\Deleted).

        Searches again until the folder is empty: mail that arrives while a batch is handled
        is announced in the responses to our own commands (which imapclient drops), so IDLE
        would never mention it.
        """
        handled: set[int] = set()
        while not self._stop.is_set():
            # Only mail not tried yet in this round: a message that cannot be fetched or moved
            # must not spin this loop; the next round (poll_seconds) tries it again.
            uids = sorted(set(client.search(["UNDELETED"])) - handled)
            if not uids:
                self._pulse(self._now())
                return
            handled.update(uids)
            for start in range(0, len(uids), BATCH):
                if self._stop.is_set():
                    return
                batch = uids[start:start + BATCH]
                added, stored = self._store_batch(client, uidvalidity, batch)
                self._move(client, stored, processed, capabilities)
                if added and self._on_stored is not None:
                    self._on_stored()

    def _move(self, client: IMAPClient, uids: list[int], processed: str,
              capabilities: frozenset[bytes]) -> None:
        """Move stored mail out; make the processed folder again if someone deleted it."""
        try:
            move_messages(client, uids, processed, capabilities)
        except IMAPClientError as exc:
            if not _try_create(exc):
                raise
            log.warning("IMAP folder for processed mail is gone (%s); creating it again", exc)
            ensure_folder(client, processed)
            move_messages(client, uids, processed, capabilities)

    def _store_batch(self, client: IMAPClient, uidvalidity: int,
                     uids: list[int]) -> tuple[int, list[int]]:
        """Fetch and store `uids`: (how many were new, the UIDs now safely in the inbox).

        Oversized mail is stored with its headers only and quarantined as 'too_large'.
        """
        limit = self._settings.max_message_bytes
        sizes = client.fetch(uids, ["RFC822.SIZE"])
        size = {u: int(sizes[u].get(b"RFC822.SIZE", 0)) for u in uids if u in sizes}
        small = [u for u in uids if u in size and size[u] <= limit]
        large = [u for u in uids if u in size and size[u] > limit]
        bodies: dict[int, bytes] = {}
        # A message expunged meanwhile by someone else comes back without its part, or NIL.
        if small:
            for uid, data in client.fetch(small, ["BODY.PEEK[]"]).items():
                if data.get(b"BODY[]"):
                    bodies[uid] = bytes(data[b"BODY[]"])
        headers: dict[int, bytes] = {}
        if large:
            for uid, data in client.fetch(large, ["BODY.PEEK[HEADER]"]).items():
                if data.get(b"BODY[HEADER]"):
                    headers[uid] = bytes(data[b"BODY[HEADER]"])
        added = 0
        safe = []
        for uid in uids:
            raw = bodies.get(uid)
            too_large = raw is None and uid in headers
            if too_large:
                raw = headers[uid]
            if raw is None:
                continue  # expunged by someone else meanwhile, or not readable right now
            if self._store(uidvalidity, uid, raw, size[uid] if too_large else None):
                added += 1
            safe.append(uid)
        self.stored += added
        return added, safe

    def _store(self, uidvalidity: int, uid: int, raw: bytes, oversize: int | None) -> bool:
        now = self._now()
        with transaction(self._factory) as session:
            row = store_inbound(
                session, channel=CHANNEL,
                external_id=f"imap:{self._imap.folder}:{uidvalidity}:{uid}", raw=raw,
                message_id=message_id_of(raw) or content_id(raw), now=now)
            if row is not None and oversize is not None:
                quarantine(session, row.id, reason="too_large", now=now,
                           detail=f"{oversize} bytes; headers kept, body left on the server")
        return row is not None


def _unread_data(client: IMAPClient) -> bool:
    """Whether server lines already sit in a buffer (imaplib's or TLS's), invisible to poll()."""
    sock = client.socket()
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    reader = getattr(getattr(client, "_imap", None), "file", None)
    peek = getattr(reader, "peek", None)
    if peek is None:
        return False
    sock.setblocking(False)
    try:
        return bool(peek(1))
    except (OSError, ValueError):  # nothing to read without blocking, or a closed file
        return False
    finally:
        sock.settimeout(READ_TIMEOUT_SECONDS)


def _is_bye(response: Any) -> bool:
    return isinstance(response, tuple) and len(response) > 0 and response[0] == b"BYE"


def _is_new_mail(response: Any) -> bool:
    return (isinstance(response, tuple) and len(response) > 1
            and response[1] in (b"EXISTS", b"RECENT"))


# --- after sealing --------------------------------------------------------------------------


def purge_processed(settings: Settings, message_ids: Iterable[str]) -> int:
    """Delete processed mail with these Message-IDs from the server; returns how many.

    Called when a survey is sealed: the replies in the processed folder are the last copies of
    answers outside the anonymised store. SEARCH HEADER is a substring match, so each candidate's
    Message-ID is compared exactly before it is deleted.
    """
    wanted = {n for n in (normalise_message_id(m) for m in message_ids) if n is not None}
    if not wanted:
        return 0
    client = connect(settings.email)
    try:
        folder = server_folder(client, settings.email.imap.processed_folder)
        if not client.folder_exists(folder):
            return 0
        client.select_folder(folder)
        candidates: set[int] = set()
        for message_id in sorted(wanted):
            candidates.update(client.search(["HEADER", "Message-ID", message_id]))
        doomed = []
        if candidates:
            fetched = client.fetch(sorted(candidates), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            for uid, data in fetched.items():
                header = next((bytes(v) for k, v in data.items() if k.startswith(b"BODY[")), b"")
                if message_id_of(header) in wanted:
                    doomed.append(uid)
        if doomed:
            client.add_flags(doomed, [_DELETED], silent=True)
            if b"UIDPLUS" in _capabilities(client):
                client.uid_expunge(doomed)
            else:
                client.expunge()
        log.info("%s processed messages deleted from the IMAP server", len(doomed))
        return len(doomed)
    finally:
        _close(client)
