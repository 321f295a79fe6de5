"""Durable state in one SQLite file: active sessions, checklist ticks, preferences, seen updates,
the front end's outbox of messages still to deliver, the misses log (what people asked and
did not get, for the knowledge base's author; see bot/misses.py), and the names Telegram gave
the pictures it was sent (bot/telegram_pictures.py).

Every write commits before its method returns (autocommit, WAL), so a `kill -9` right after
a call loses nothing: in WAL mode a committed transaction survives the process dying, and
synchronous=NORMAL only risks the last commits on a power cut or kernel crash, for a commit
several times cheaper than FULL (the dedupe write happens on every Telegram update).
Inside `Store.transaction()` the writes of several calls commit together instead: the Telegram
front end records an update as seen, the session's new state and the messages that show it
in one commit, so a crash keeps all three or none.

Nothing grows without bound: `prune()` (run on a schedule by the front end) drops seen update
ids, sessions, undelivered messages and answers still open to feedback older than their keep
times; `prune_misses` drops the misses log's old days.

The schema version lives in `PRAGMA user_version`; `MIGRATIONS` are applied in order on
open, and a file from a newer program is refused rather than damaged. Every failure is a
`StoreError` whose one-line message names the file and the reason, so start-up can print it
as it is.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_BUSY_TIMEOUT = 5.0
CACHE_KIB = 512  # SQLite's page cache for the one connection
# Telegram re-delivers an update for at most a day; two days leaves a margin for clock skew.
SEEN_UPDATES_KEEP_SECONDS = 2 * 24 * 3600.0
# A guided session nobody has moved on for this long is over: a message, a button press or a
# restart the next day starts afresh instead of reopening yesterday's massage at step 5.
SESSION_KEEP_SECONDS = 12 * 3600.0
# A message still undelivered after this long is dropped: it is about a session that is over
# by now, or an answer nobody is waiting for any more.
OUTBOX_KEEP_SECONDS = SESSION_KEEP_SECONDS
# An answer can be marked "not what I asked" for as long as a session lasts: by then its
# person has moved on, and the question they asked is not kept any longer.
FEEDBACK_KEEP_SECONDS = SESSION_KEEP_SECONDS
SQLITE_HEADER = b"SQLite format 3\x00"

# Migration N (1-based) takes the schema from version N-1 to N. Append; never edit one that
# has shipped, since databases out there already ran it.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE active_sessions (
            chat_id INTEGER PRIMARY KEY,
            state TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE checklist_ticks (
            chat_id INTEGER NOT NULL,
            list_id TEXT NOT NULL,
            item_index INTEGER NOT NULL,
            PRIMARY KEY (chat_id, list_id, item_index)
        ) WITHOUT ROWID""",
        """CREATE TABLE preferences (
            chat_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (chat_id, key)
        ) WITHOUT ROWID""",
        """CREATE TABLE seen_updates (
            update_id INTEGER PRIMARY KEY,
            seen_at REAL NOT NULL
        )""",
        "CREATE INDEX seen_updates_by_time ON seen_updates (seen_at)",
    ),
    (
        # Messages a front end has decided to show and not yet delivered, oldest first. The
        # body is the front end's own (opaque here); `target` is the message it replaces.
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL,
            target INTEGER,
            body TEXT NOT NULL,
            priority INTEGER NOT NULL,
            supersedable INTEGER NOT NULL,
            attempted INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX outbox_by_chat ON outbox (chat_id, id)",
        "CREATE INDEX outbox_by_time ON outbox (created_at)",
        # Who started a chat's session run, where several people share the chat (groups).
        """CREATE TABLE session_owners (
            chat_id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            user_id INTEGER NOT NULL,
            name TEXT NOT NULL
        )""",
        "CREATE INDEX active_sessions_by_time ON active_sessions (updated_at)",
    ),
    (
        # The misses log: messages that got a did-you-mean or a fallback, and answers marked
        # not what was asked. No chat or user id and no time of day: it identifies no one.
        # `ref` is the random handle its buttons carry; `candidates` is JSON [[topic, score]].
        """CREATE TABLE misses (
            id INTEGER PRIMARY KEY,
            ref TEXT NOT NULL UNIQUE,
            day TEXT NOT NULL,
            front_end TEXT NOT NULL,
            text TEXT NOT NULL,
            decision TEXT NOT NULL,
            candidates TEXT NOT NULL,
            unhelpful INTEGER NOT NULL DEFAULT 0,
            picked TEXT,
            none_of_these INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX misses_by_day ON misses (day)",
        # Answers shown with feedback buttons, until pressed or FEEDBACK_KEEP_SECONDS: what a
        # "not what I asked" needs to log the question and offer the next best topics.
        """CREATE TABLE open_answers (
            ref TEXT PRIMARY KEY,
            text TEXT NOT NULL,
            candidates TEXT NOT NULL,
            shown_at REAL NOT NULL
        )""",
        "CREATE INDEX open_answers_by_time ON open_answers (shown_at)",
    ),
    (
        # What Telegram named each picture it was sent (`file_id`), so a picture is uploaded
        # once per bot and sent by name after that. `picture` is its file's key: id, content
        # hash and renderer version (bot/pictures.py), so a changed picture is uploaded anew.
        # Bounded by the knowledge base's pictures and their versions.
        """CREATE TABLE picture_files (
            bot_id INTEGER NOT NULL,
            picture TEXT NOT NULL,
            file_id TEXT NOT NULL,
            PRIMARY KEY (bot_id, picture)
        ) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The database can't be used; the message is one line naming the file and the reason."""


@dataclass(frozen=True)
class OutboxRow:
    """One message waiting in the outbox."""

    row_id: int
    chat_id: int
    target: int | None  # the message this one replaces, or None for a new message
    body: str
    priority: int
    supersedable: bool
    attempted: bool  # handed to the network once: it may have been delivered
    created_at: float


@dataclass(frozen=True)
class SessionOwner:
    run_id: str
    user_id: int
    name: str


Scored = tuple[tuple[str, float], ...]  # (topic id, score 0..100), best first


@dataclass(frozen=True)
class MissRow:
    """One entry of the misses log."""

    ref: str
    day: str  # YYYY-MM-DD
    front_end: str
    text: str
    decision: str  # the matcher's: "clarify", "fallback", or "answer" (marked unhelpful)
    candidates: Scored  # what was offered (for an unhelpful answer: it, then what came after)
    unhelpful: bool = False
    picked: str | None = None  # the topic the person chose from what was offered
    none_of_these: bool = False


@dataclass(frozen=True)
class OpenAnswer:
    """An answer still open to feedback: the question (empty when the log is off) and the
    topics the matcher ranked for it, the answered one first."""

    text: str
    candidates: Scored


@dataclass(frozen=True)
class Pruned:
    """How many rows `Store.prune` dropped, per kind."""

    seen_updates: int = 0
    sessions: int = 0
    outbox: int = 0
    owners: int = 0
    open_answers: int = 0


def _reason(error: sqlite3.Error, busy_timeout: float) -> str:
    """What went wrong, in words a person running the bot can act on."""
    message = str(error)
    lowered = message.lower()
    if "not a database" in lowered or "malformed" in lowered:
        return (
            "file is not a database (corrupted, or some other file); move it aside "
            "and a new one will be made"
        )
    if "locked" in lowered or "busy" in lowered:
        return (
            f"the database is locked: another program held it for more than "
            f"{busy_timeout:g} s (is a second copy of the bot running?)"
        )
    if "readonly" in lowered:
        return "permission denied: the database is read-only for this user"
    if "unable to open" in lowered:
        return "cannot open the database file (permission denied, or the path is a directory?)"
    return message


class Store:
    """One SQLite database; safe to share between threads (one lock, one connection)."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        busy_timeout: float,
        now: Callable[[], float],
        seen_keep_seconds: float,
        session_keep_seconds: float,
        outbox_keep_seconds: float = OUTBOX_KEEP_SECONDS,
    ) -> None:
        # Use Store.open: it checks the file, sets the pragmas and migrates.
        self._connection: sqlite3.Connection | None = connection
        self.path = path
        self._busy_timeout = busy_timeout
        self._now = now
        self._seen_keep_seconds = seen_keep_seconds
        self._session_keep_seconds = session_keep_seconds
        self._outbox_keep_seconds = outbox_keep_seconds
        # Re-entrant: the methods called inside transaction() take it again.
        self._lock = threading.RLock()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        now: Callable[[], float] = time.time,
        seen_keep_seconds: float = SEEN_UPDATES_KEEP_SECONDS,
        session_keep_seconds: float = SESSION_KEEP_SECONDS,
        outbox_keep_seconds: float = OUTBOX_KEEP_SECONDS,
    ) -> Store:
        """Open (creating the file and its directory if needed) and bring the schema up to date."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"database {path}: cannot create the directory {path.parent}: "
                f"{error.strerror or error}"
            ) from error
        _check_file(path)
        try:
            connection = sqlite3.connect(
                path,
                timeout=busy_timeout,
                isolation_level=None,  # autocommit: each write is its own committed transaction
                check_same_thread=False,  # the lock below serialises use across threads
            )
        except sqlite3.Error as error:
            raise StoreError(f"database {path}: {_reason(error, busy_timeout)}") from error
        store = cls(
            connection, path, busy_timeout, now, seen_keep_seconds, session_keep_seconds,
            outbox_keep_seconds,
        )
        try:
            with store._locked() as db:
                db.execute("PRAGMA journal_mode=WAL")
                # NORMAL under WAL: durable across a crash of this process (kill -9), not
                # across a power cut; see the module docstring.
                db.execute("PRAGMA synchronous=NORMAL")
                # The hot pages are few (the newest rows of a handful of tables); the rest
                # come from the OS's file cache when needed. SQLite's default 2 MiB cache
                # filled with outbox rows waiting in a backlog (bench/bench_telegram.py).
                db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            store._migrate()
        except StoreError:
            store.close()
            raise
        return store

    def now(self) -> float:
        """The store's wall clock, seconds since the epoch: what its keep times count in."""
        return self._now()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Every write made inside commits together when the block ends, or none on an error.

        Other threads wait until it is over; calls inside join it rather than commit alone.
        """
        with self._locked() as db, _transaction(db):
            yield

    # --- sessions -------------------------------------------------------------------------

    def save_session(self, chat_id: int, state: Mapping[str, Any]) -> None:
        text = json.dumps(state, separators=(",", ":"), allow_nan=False)
        with self._locked() as db:
            db.execute(
                "INSERT INTO active_sessions (chat_id, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (chat_id) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (chat_id, text, self._now()),
            )

    def load_session(self, chat_id: int) -> dict[str, Any] | None:
        """The chat's saved session, or None; one untouched for the keep time is deleted."""
        with self._locked() as db:
            row = db.execute(
                "SELECT state, updated_at FROM active_sessions WHERE chat_id = ?", (chat_id,)
            ).fetchone()
            if row is not None and row[1] < self._now() - self._session_keep_seconds:
                db.execute("DELETE FROM active_sessions WHERE chat_id = ?", (chat_id,))
                return None
        return None if row is None else _decode(row[0])

    def delete_session(self, chat_id: int) -> None:
        with self._locked() as db:
            db.execute("DELETE FROM active_sessions WHERE chat_id = ?", (chat_id,))

    def active_sessions(self) -> list[tuple[int, dict[str, Any]]]:
        """Every saved session, by chat id; rows that are not JSON objects are left out, and
        sessions untouched for the keep time are deleted."""
        with self._locked() as db:
            db.execute(
                "DELETE FROM active_sessions WHERE updated_at < ?",
                (self._now() - self._session_keep_seconds,),
            )
            rows = db.execute(
                "SELECT chat_id, state FROM active_sessions ORDER BY chat_id"
            ).fetchall()
        sessions = [(chat_id, _decode(text)) for chat_id, text in rows]
        return [(chat_id, state) for chat_id, state in sessions if state is not None]

    def session_chat_ids(self) -> list[int]:
        """The chats with a saved session, without reading the sessions (a restart with
        thousands brings them back a few at a time); expired ones are deleted first."""
        with self._locked() as db:
            db.execute(
                "DELETE FROM active_sessions WHERE updated_at < ?",
                (self._now() - self._session_keep_seconds,),
            )
            rows = db.execute("SELECT chat_id FROM active_sessions ORDER BY chat_id").fetchall()
        return [chat_id for (chat_id,) in rows]

    def set_session_owner(self, chat_id: int, run_id: str, user_id: int, name: str) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT INTO session_owners (chat_id, run_id, user_id, name) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (chat_id) DO UPDATE SET run_id = excluded.run_id, "
                "user_id = excluded.user_id, name = excluded.name",
                (chat_id, run_id, user_id, name),
            )

    def session_owner(self, chat_id: int) -> SessionOwner | None:
        """Who started the chat's latest session run, as recorded by set_session_owner."""
        with self._locked() as db:
            row = db.execute(
                "SELECT run_id, user_id, name FROM session_owners WHERE chat_id = ?", (chat_id,)
            ).fetchone()
        return None if row is None else SessionOwner(row[0], row[1], row[2])

    def forget_chat(self, chat_id: int) -> None:
        """Drop the chat's session, its owner and its undelivered messages (the chat is gone)."""
        with self._locked() as db, _transaction(db):
            db.execute("DELETE FROM active_sessions WHERE chat_id = ?", (chat_id,))
            db.execute("DELETE FROM session_owners WHERE chat_id = ?", (chat_id,))
            db.execute("DELETE FROM outbox WHERE chat_id = ?", (chat_id,))

    # --- checklists -----------------------------------------------------------------------

    def ticked(self, chat_id: int, list_id: str) -> set[int]:
        with self._locked() as db:
            rows = db.execute(
                "SELECT item_index FROM checklist_ticks WHERE chat_id = ? AND list_id = ?",
                (chat_id, list_id),
            ).fetchall()
        return {index for (index,) in rows}

    def set_tick(self, chat_id: int, list_id: str, index: int, ticked: bool) -> None:
        with self._locked() as db:
            if ticked:
                db.execute(
                    "INSERT OR IGNORE INTO checklist_ticks (chat_id, list_id, item_index) "
                    "VALUES (?, ?, ?)",
                    (chat_id, list_id, index),
                )
            else:
                db.execute(
                    "DELETE FROM checklist_ticks "
                    "WHERE chat_id = ? AND list_id = ? AND item_index = ?",
                    (chat_id, list_id, index),
                )

    def clear_ticks(self, chat_id: int, list_id: str) -> None:
        with self._locked() as db:
            db.execute(
                "DELETE FROM checklist_ticks WHERE chat_id = ? AND list_id = ?",
                (chat_id, list_id),
            )

    # --- preferences ----------------------------------------------------------------------

    def preference(self, chat_id: int, key: str, default: str | None = None) -> str | None:
        with self._locked() as db:
            row = db.execute(
                "SELECT value FROM preferences WHERE chat_id = ? AND key = ?", (chat_id, key)
            ).fetchone()
        return default if row is None else str(row[0])

    def set_preference(self, chat_id: int, key: str, value: str) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT INTO preferences (chat_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (chat_id, key) DO UPDATE SET value = excluded.value",
                (chat_id, key, value),
            )

    # --- pictures Telegram holds ------------------------------------------------------------

    def picture_file(self, bot_id: int, picture: str) -> str | None:
        with self._locked() as db:
            row = db.execute(
                "SELECT file_id FROM picture_files WHERE bot_id = ? AND picture = ?",
                (bot_id, picture),
            ).fetchone()
        return None if row is None else str(row[0])

    def set_picture_file(self, bot_id: int, picture: str, file_id: str | None) -> None:
        """Remember (or, with None, forget: Telegram refused it) a picture's file_id."""
        with self._locked() as db:
            if file_id is None:
                db.execute("DELETE FROM picture_files WHERE bot_id = ? AND picture = ?",
                           (bot_id, picture))
                return
            db.execute(
                "INSERT INTO picture_files (bot_id, picture, file_id) VALUES (?, ?, ?) "
                "ON CONFLICT (bot_id, picture) DO UPDATE SET file_id = excluded.file_id",
                (bot_id, picture, file_id),
            )

    # --- Telegram updates -----------------------------------------------------------------

    def mark_update_seen(self, update_id: int) -> bool:
        """True the first time `update_id` is seen, False for a re-delivery of it.

        Ids are kept for the seen keep time (`prune` drops older ones): by then Telegram no
        longer re-delivers them.
        """
        with self._locked() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO seen_updates (update_id, seen_at) VALUES (?, ?)",
                (update_id, self._now()),
            )
            return cursor.rowcount == 1

    # --- outbox -----------------------------------------------------------------------------

    def add_outgoing(
        self,
        chat_id: int,
        body: str,
        *,
        target: int | None = None,
        priority: int = 0,
        supersedable: bool = False,
    ) -> OutboxRow:
        """Queue a message for `chat_id`; rows come back from `outgoing` in this order."""
        created_at = self._now()
        with self._locked() as db:
            cursor = db.execute(
                "INSERT INTO outbox (chat_id, target, body, priority, supersedable, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (chat_id, target, body, priority, int(supersedable), created_at),
            )
        assert cursor.lastrowid is not None
        return OutboxRow(
            cursor.lastrowid, chat_id, target, body, priority, supersedable, False, created_at
        )

    def supersede_outgoing(self, chat_id: int, before: int | None = None) -> list[int]:
        """Drop the chat's supersedable rows not yet handed to the network (older than row
        `before`, when given); the ids dropped."""
        limit = before if before is not None else -1
        with self._locked() as db, _transaction(db):
            ids = [
                row_id
                for (row_id,) in db.execute(
                    "SELECT id FROM outbox WHERE chat_id = ? AND supersedable = 1 "
                    "AND attempted = 0 AND (? < 0 OR id < ?)",
                    (chat_id, limit, limit),
                )
            ]
            db.executemany("DELETE FROM outbox WHERE id = ?", [(row_id,) for row_id in ids])
        return ids

    def outgoing(self) -> list[OutboxRow]:
        """Every undelivered message, oldest first."""
        with self._locked() as db:
            rows = db.execute(
                "SELECT id, chat_id, target, body, priority, supersedable, attempted, created_at "
                "FROM outbox ORDER BY id"
            ).fetchall()
        return [
            OutboxRow(row_id, chat_id, target, body, priority, bool(supersedable),
                      bool(attempted), created_at)
            for row_id, chat_id, target, body, priority, supersedable, attempted, created_at
            in rows
        ]

    def outgoing_body(self, row_id: int) -> str | None:
        """The body of one undelivered message, or None when it is not in the table."""
        with self._locked() as db:
            row = db.execute("SELECT body FROM outbox WHERE id = ?", (row_id,)).fetchone()
        return None if row is None else str(row[0])

    def mark_attempted(self, row_id: int, attempted: bool = True) -> None:
        """The row is about to go out: after a crash nobody can tell whether it arrived.
        (False: it is known not to have arrived after all.)"""
        with self._locked() as db:
            db.execute("UPDATE outbox SET attempted = ? WHERE id = ?", (int(attempted), row_id))

    def retarget_outgoing(self, row_id: int, target: int | None) -> None:
        with self._locked() as db:
            db.execute("UPDATE outbox SET target = ? WHERE id = ?", (target, row_id))

    def record_outgoing(self, attempted: Iterable[int], delivered: Iterable[int]) -> None:
        """In one commit: rows about to go out (`mark_attempted`), rows done (deleted)."""
        with self._locked() as db, _transaction(db):
            db.executemany("UPDATE outbox SET attempted = 1 WHERE id = ?",
                           [(row_id,) for row_id in attempted])
            db.executemany("DELETE FROM outbox WHERE id = ?", [(row_id,) for row_id in delivered])

    def delete_outgoing(self, row_ids: Iterable[int]) -> None:
        with self._locked() as db, _transaction(db):
            db.executemany("DELETE FROM outbox WHERE id = ?", [(row_id,) for row_id in row_ids])

    # --- the misses log ----------------------------------------------------------------------

    def add_miss(self, row: MissRow) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT INTO misses (ref, day, front_end, text, decision, candidates, "
                "unhelpful, picked, none_of_these) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.ref, row.day, row.front_end, row.text, row.decision,
                 _encode_scored(row.candidates), int(row.unhelpful), row.picked,
                 int(row.none_of_these)),
            )

    def miss(self, ref: str) -> MissRow | None:
        with self._locked() as db:
            row = db.execute(f"SELECT {_MISS_COLUMNS} FROM misses WHERE ref = ?",
                             (ref,)).fetchone()
        return None if row is None else _miss_row(row)

    def set_miss_pick(self, ref: str, picked: str | None) -> None:
        """What the person chose from the offer: a topic, or None for "none of these"."""
        with self._locked() as db:
            db.execute(
                "UPDATE misses SET picked = ?, none_of_these = ? WHERE ref = ?",
                (picked, int(picked is None), ref),
            )

    def misses(self, since_day: str = "") -> list[MissRow]:
        """The log from `since_day` (YYYY-MM-DD) on, oldest first."""
        with self._locked() as db:
            rows = db.execute(
                f"SELECT {_MISS_COLUMNS} FROM misses WHERE day >= ? ORDER BY id", (since_day,)
            ).fetchall()
        return [_miss_row(row) for row in rows]

    def prune_misses(self, before_day: str | None) -> int:
        """Drop the log's days before `before_day`, or the whole log for None, and answers
        past their feedback keep time (or all of them too); the log rows dropped."""
        with self._locked() as db, _transaction(db):
            if before_day is None:
                db.execute("DELETE FROM open_answers")
                return db.execute("DELETE FROM misses").rowcount
            _expire_open_answers(db, self._now())
            return db.execute("DELETE FROM misses WHERE day < ?", (before_day,)).rowcount

    def open_answer(self, ref: str, answer: OpenAnswer) -> None:
        with self._locked() as db:
            db.execute(
                "INSERT OR REPLACE INTO open_answers (ref, text, candidates, shown_at) "
                "VALUES (?, ?, ?, ?)",
                (ref, answer.text, _encode_scored(answer.candidates), self._now()),
            )

    def close_answer(self, ref: str) -> OpenAnswer | None:
        """The answer's question and ranking, forgotten as they are handed back: feedback is
        given once. None when it was given already or the keep time is over."""
        with self._locked() as db, _transaction(db):
            row = db.execute(
                "SELECT text, candidates, shown_at FROM open_answers WHERE ref = ?", (ref,)
            ).fetchone()
            db.execute("DELETE FROM open_answers WHERE ref = ?", (ref,))
        if row is None or row[2] < self._now() - FEEDBACK_KEEP_SECONDS:
            return None
        return OpenAnswer(row[0], _decode_scored(row[1]))

    # --- retention --------------------------------------------------------------------------

    def prune(self) -> Pruned:
        """Drop what is past its keep time: seen update ids, untouched sessions, undelivered
        messages, owners of sessions that are over, and answers no longer open to feedback."""
        now = self._now()
        with self._locked() as db, _transaction(db):
            seen = db.execute(
                "DELETE FROM seen_updates WHERE seen_at < ?", (now - self._seen_keep_seconds,)
            ).rowcount
            sessions = db.execute(
                "DELETE FROM active_sessions WHERE updated_at < ?",
                (now - self._session_keep_seconds,),
            ).rowcount
            outbox = db.execute(
                "DELETE FROM outbox WHERE created_at < ?", (now - self._outbox_keep_seconds,)
            ).rowcount
            owners = db.execute(
                "DELETE FROM session_owners WHERE chat_id NOT IN "
                "(SELECT chat_id FROM active_sessions)"
            ).rowcount
            answers = _expire_open_answers(db, now)
        return Pruned(seen_updates=seen, sessions=sessions, outbox=outbox, owners=owners,
                      open_answers=answers)

    # --- internals ------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, held under the lock, with sqlite errors turned into StoreError."""
        with self._lock:
            if self._connection is None:
                raise StoreError(f"database {self.path}: the store is closed")
            try:
                yield self._connection
            except sqlite3.Error as error:
                raise StoreError(
                    f"database {self.path}: {_reason(error, self._busy_timeout)}"
                ) from error

    def _migrate(self) -> None:
        # IMMEDIATE takes the write lock first, so two programs opening one new file at once
        # can't both run migration 1; it also shows at start-up that the file is writable.
        with self._locked() as db, _transaction(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"database {self.path}: its schema is version {version}, newer than the "
                    f"{SCHEMA_VERSION} this program knows; upgrade the program or use another "
                    "data directory"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[number - 1]:
                    db.execute(statement)
                # PRAGMA takes no parameters; `number` is an int from range().
                db.execute(f"PRAGMA user_version = {number}")


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error; inside Store.transaction() the
    statements join the transaction already open."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # sqlite rolls back by itself on some errors (disk full)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _check_file(path: Path) -> None:
    """Refuse what sqlite would misreport or silently replace: directories, other files."""
    if path.is_dir():
        raise StoreError(f"database {path}: this is a directory, not a database file")
    if not path.exists():
        return
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        raise StoreError(f"database {path}: cannot read the file: {error.strerror}") from error
    # An empty file is a valid empty database to sqlite; anything else must start like one.
    if header and header != SQLITE_HEADER:
        raise StoreError(
            f"database {path}: file is not a database (corrupted, or some other file); "
            "move it aside and a new one will be made"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"database {path}: permission denied: need read and write access")


_MISS_COLUMNS = (
    "ref, day, front_end, text, decision, candidates, unhelpful, picked, none_of_these"
)


def _miss_row(row: tuple[Any, ...]) -> MissRow:
    ref, day, front_end, text, decision, candidates, unhelpful, picked, none_of_these = row
    return MissRow(ref, day, front_end, text, decision, _decode_scored(candidates),
                   bool(unhelpful), picked, bool(none_of_these))


def _expire_open_answers(db: sqlite3.Connection, now: float) -> int:
    return db.execute(
        "DELETE FROM open_answers WHERE shown_at < ?", (now - FEEDBACK_KEEP_SECONDS,)
    ).rowcount


def _encode_scored(scored: Scored) -> str:
    return json.dumps([[topic, round(score, 1)] for topic, score in scored])


def _decode_scored(text: str) -> Scored:
    """Candidates back from JSON; anything malformed reads as none (the log is advisory)."""
    try:
        value = json.loads(text)
        return tuple((str(topic), float(score)) for topic, score in value)
    except (ValueError, TypeError):
        return ()


def _decode(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
