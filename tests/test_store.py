"""The SQLite store: what is saved comes back, across restarts and crashes; failures say why."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import SCHEMA_VERSION, Store, StoreError

STATE = {"version": 1, "run_id": "ab12cd", "step_index": 3, "remaining": 12.5, "ticked": [0, 2]}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "massage-bot.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    with Store.open(path) as opened:
        yield opened


def test_open_creates_the_directory_and_a_current_schema(path: Path) -> None:
    with Store.open(path):
        pass

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_session_round_trips(store: Store) -> None:
    store.save_session(42, STATE)

    assert store.load_session(42) == STATE
    assert store.load_session(7) is None


def test_saving_again_replaces_the_session(store: Store) -> None:
    store.save_session(42, STATE)
    store.save_session(42, {**STATE, "step_index": 4})

    assert store.load_session(42) == {**STATE, "step_index": 4}
    assert store.active_sessions() == [(42, {**STATE, "step_index": 4})]


def test_deleted_session_is_gone(store: Store) -> None:
    store.save_session(42, STATE)

    store.delete_session(42)

    assert store.load_session(42) is None
    assert store.active_sessions() == []


def test_active_sessions_lists_every_chat(store: Store) -> None:
    store.save_session(9, {"n": 9})
    store.save_session(-100123, {"n": 1})  # group chats have negative ids

    assert store.active_sessions() == [(-100123, {"n": 1}), (9, {"n": 9})]


def test_a_row_that_is_not_a_json_object_reads_as_no_session(store: Store, path: Path) -> None:
    store.save_session(1, STATE)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("INSERT INTO active_sessions VALUES (2, '{broken', 0), (3, '[1, 2]', 0)")
    db.close()

    assert store.load_session(2) is None
    assert store.load_session(3) is None
    assert store.active_sessions() == [(1, STATE)]


def test_ticks_toggle_per_chat_and_list(store: Store) -> None:
    store.set_tick(1, "equipment", 0, True)
    store.set_tick(1, "equipment", 3, True)
    store.set_tick(1, "equipment", 3, True)  # ticking twice is still one tick
    store.set_tick(1, "other", 5, True)
    store.set_tick(2, "equipment", 1, True)
    store.set_tick(1, "equipment", 0, False)

    assert store.ticked(1, "equipment") == {3}
    assert store.ticked(1, "other") == {5}
    assert store.ticked(2, "equipment") == {1}
    assert store.ticked(3, "equipment") == set()


def test_clear_ticks_empties_one_list(store: Store) -> None:
    store.set_tick(1, "equipment", 0, True)
    store.set_tick(1, "other", 0, True)

    store.clear_ticks(1, "equipment")

    assert store.ticked(1, "equipment") == set()
    assert store.ticked(1, "other") == {0}


def test_preferences_have_defaults_and_can_change(store: Store) -> None:
    assert store.preference(1, "hands_free") is None
    assert store.preference(1, "hands_free", "1") == "1"

    store.set_preference(1, "hands_free", "0")
    store.set_preference(1, "hands_free", "1")
    store.set_preference(2, "hands_free", "0")

    assert store.preference(1, "hands_free", "0") == "1"
    assert store.preference(2, "hands_free", "1") == "0"


def test_everything_survives_reopening(path: Path) -> None:
    with Store.open(path) as first:
        first.save_session(1, STATE)
        first.set_tick(1, "equipment", 2, True)
        first.set_preference(1, "hands_free", "0")
        assert first.mark_update_seen(500)

    with Store.open(path) as second:
        assert second.load_session(1) == STATE
        assert second.ticked(1, "equipment") == {2}
        assert second.preference(1, "hands_free") == "0"
        assert not second.mark_update_seen(500)


def test_nothing_is_lost_when_the_process_is_killed(path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from bot.store import Store
        store = Store.open(Path({str(path)!r}))
        store.save_session(1, {{"step": 3}})
        store.set_tick(1, "equipment", 4, True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert done.returncode == -9

    with Store.open(path) as store:
        assert store.load_session(1) == {"step": 3}
        assert store.ticked(1, "equipment") == {4}


def test_an_update_counts_as_new_only_once(store: Store) -> None:
    assert store.mark_update_seen(1001) is True
    assert store.mark_update_seen(1001) is False
    assert store.mark_update_seen(1002) is True


def test_old_seen_updates_are_pruned(path: Path) -> None:
    now = [1_000_000.0]
    with Store.open(path, now=lambda: now[0], seen_keep_seconds=3600) as store:
        store.mark_update_seen(1)
        now[0] += 3601
        store.mark_update_seen(2)
        assert store.prune().seen_updates == 1  # the front end prunes on a schedule

        # Pruned, so an update id seen long ago counts as new again.
        assert store.mark_update_seen(1) is True
        assert store.mark_update_seen(2) is False
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM seen_updates").fetchone()[0] == 2
    db.close()


def test_a_session_left_alone_for_the_keep_time_is_forgotten(path: Path) -> None:
    now = [1_000_000.0]
    with Store.open(path, now=lambda: now[0], session_keep_seconds=3600) as store:
        store.save_session(1, {"step": 2})
        store.save_session(2, {"step": 5})
        store.save_session(3, {"step": 1})
        now[0] += 3000
        store.save_session(2, {"step": 6})  # chat 2 moved on; chats 1 and 3 did not
        now[0] += 601

        assert store.load_session(3) is None
        assert store.active_sessions() == [(2, {"step": 6})]  # a restart brings back 2 only
        assert store.load_session(2) == {"step": 6}
    db = sqlite3.connect(path)
    assert db.execute("SELECT chat_id FROM active_sessions").fetchall() == [(2,)]
    db.close()


def test_a_session_just_inside_the_keep_time_is_kept(path: Path) -> None:
    now = [1_000_000.0]
    with Store.open(path, now=lambda: now[0], session_keep_seconds=3600) as store:
        store.save_session(1, {"step": 2})
        now[0] += 3599
        assert store.load_session(1) == {"step": 2}
        assert store.active_sessions() == [(1, {"step": 2})]


def test_a_closed_store_says_so(path: Path) -> None:
    store = Store.open(path)
    store.close()
    store.close()  # closing twice is harmless

    with pytest.raises(StoreError, match="the store is closed"):
        store.load_session(1)


# --- failures ---------------------------------------------------------------------------------


def test_a_file_that_is_not_a_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\xffthis is not sqlite at all" * 200)

    with pytest.raises(StoreError) as raised:
        Store.open(path)

    message = str(raised.value)
    assert str(path) in message
    assert "file is not a database" in message
    assert "\n" not in message


def test_a_damaged_database_is_refused(path: Path) -> None:
    with Store.open(path) as store:
        store.save_session(1, STATE)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xab" * (4096 - 100)  # the header survives, the schema page does not
    path.write_bytes(bytes(data))

    with pytest.raises(StoreError, match="file is not a database") as raised:
        Store.open(path)

    assert str(path) in str(raised.value)


def test_a_locked_database_fails_after_the_busy_timeout(path: Path) -> None:
    with Store.open(path):
        pass
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreError) as raised:
            Store.open(path, busy_timeout=0.05)
        waited = time.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()

    message = str(raised.value)
    assert str(path) in message
    assert "locked" in message
    assert waited < 5


def test_a_write_while_another_program_holds_the_lock_fails_clearly(path: Path) -> None:
    with Store.open(path, busy_timeout=0.05) as store:
        store.save_session(1, STATE)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError, match="locked"):
                store.save_session(1, {"newer": True})
            # Readers are not blocked in WAL mode; the saved state is still there.
            assert store.load_session(1) == STATE
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.save_session(1, {"newer": True})
        assert store.load_session(1) == {"newer": True}


def test_a_schema_from_a_newer_program_is_refused(path: Path) -> None:
    with Store.open(path):
        pass
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()

    with pytest.raises(StoreError) as raised:
        Store.open(path)

    message = str(raised.value)
    assert str(path) in message
    assert f"version {SCHEMA_VERSION + 1}, newer than the {SCHEMA_VERSION}" in message


def test_a_directory_that_cannot_be_made_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    path = blocker / "data" / "massage-bot.sqlite3"

    with pytest.raises(StoreError) as raised:
        Store.open(path)

    assert str(path) in str(raised.value)
    assert f"cannot create the directory {path.parent}" in str(raised.value)


def test_a_directory_in_place_of_the_file_is_reported(path: Path) -> None:
    path.mkdir(parents=True)

    with pytest.raises(StoreError, match="is a directory, not a database file"):
        Store.open(path)


def test_an_empty_file_becomes_a_database(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")

    with Store.open(path) as store:
        store.save_session(1, STATE)
        assert store.load_session(1) == STATE
