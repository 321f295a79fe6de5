"""Durable state in one SQLite file: active sessions, checklist ticks, preferences, seen updates.

Every write commits before its method returns (autocommit, WAL), so a `kill -9` right after
a call loses nothing: in WAL mode a committed transaction survives the process dying, and
synchronous=NORMAL only risks the last commits on a power cut or kernel crash, for a commit
several times cheaper than FULL (the dedupe write happens on every Telegram update).

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_BUSY_TIMEOUT = 5.0
# Telegram re-delivers an update for at most a day; two days leaves a margin for clock skew.
SEEN_UPDATES_KEEP_SECONDS = 2 * 24 * 3600.0
# A guided session nobody has moved on for this long is over: a message, a button press or a
# restart the next day starts afresh instead of reopening yesterday's massage at step 5.
SESSION_KEEP_SECONDS = 12 * 3600.0
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
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The database can't be used; the message is one line naming the file and the reason."""


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
    ) -> None:
        # Use Store.open: it checks the file, sets the pragmas and migrates.
        self._connection: sqlite3.Connection | None = connection
        self.path = path
        self._busy_timeout = busy_timeout
        self._now = now
        self._seen_keep_seconds = seen_keep_seconds
        self._session_keep_seconds = session_keep_seconds
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        now: Callable[[], float] = time.time,
        seen_keep_seconds: float = SEEN_UPDATES_KEEP_SECONDS,
        session_keep_seconds: float = SESSION_KEEP_SECONDS,
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
        store = cls(connection, path, busy_timeout, now, seen_keep_seconds, session_keep_seconds)
        try:
            with store._locked() as db:
                db.execute("PRAGMA journal_mode=WAL")
                # NORMAL under WAL: durable across a crash of this process (kill -9), not
                # across a power cut; see the module docstring.
                db.execute("PRAGMA synchronous=NORMAL")
            store._migrate()
        except StoreError:
            store.close()
            raise
        return store

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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

    # --- Telegram updates -----------------------------------------------------------------

    def mark_update_seen(self, update_id: int) -> bool:
        """True the first time `update_id` is seen, False for a re-delivery of it.

        Rows older than the keep time are pruned in the same transaction: by then Telegram
        no longer re-delivers them, and the table stays small without a separate job.
        """
        now = self._now()
        with self._locked() as db, _transaction(db):
            db.execute(
                "DELETE FROM seen_updates WHERE seen_at < ?", (now - self._seen_keep_seconds,)
            )
            cursor = db.execute(
                "INSERT OR IGNORE INTO seen_updates (update_id, seen_at) VALUES (?, ?)",
                (update_id, now),
            )
            return cursor.rowcount == 1

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
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
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


def _decode(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
