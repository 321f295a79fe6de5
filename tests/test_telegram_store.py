"""What the Telegram front end keeps in the store: one-commit transactions, the outbox, owners,
and retention that keeps the file bounded."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import SCHEMA_VERSION, Store

STATE = {"version": 1, "run_id": "ab12cd", "step_index": 3}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "massage-bot.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    with Store.open(path) as opened:
        yield opened


def test_a_transaction_commits_every_write_together(store: Store, path: Path) -> None:
    with store.transaction():
        assert store.mark_update_seen(7)
        store.save_session(1, STATE)
        store.add_outgoing(1, "step 4")
        # Not visible to another connection before the block ends.
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        other.close()
    assert store.load_session(1) == STATE
    assert [row.body for row in store.outgoing()] == ["step 4"]


def test_a_failed_transaction_keeps_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.mark_update_seen(7)
        store.save_session(1, STATE)
        store.add_outgoing(1, "step 4")
        raise RuntimeError("the core broke")
    assert store.load_session(1) is None
    assert store.outgoing() == []
    assert store.mark_update_seen(7)  # so a redelivery of the update is handled again


def test_a_kill_inside_a_transaction_keeps_none_of_it(path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from bot.store import Store
        store = Store.open(Path({str(path)!r}))
        store.save_session(1, {{"step": 3}})
        with store.transaction():
            store.save_session(1, {{"step": 4}})
            store.add_outgoing(1, "step 4")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    assert done.returncode == -9
    with Store.open(path) as store:
        assert store.load_session(1) == {"step": 3}
        assert store.outgoing() == []


def test_the_outbox_keeps_order_and_survives_reopening(path: Path) -> None:
    with Store.open(path) as first:
        a = first.add_outgoing(5, "a", priority=1)
        first.add_outgoing(6, "b", target=40, supersedable=True)
        first.add_outgoing(5, "c")
        first.mark_attempted(a.row_id)
    with Store.open(path) as second:
        rows = second.outgoing()
    assert [(r.chat_id, r.body, r.target, r.priority) for r in rows] == [
        (5, "a", None, 1), (6, "b", 40, 0), (5, "c", None, 0),
    ]
    assert [r.attempted for r in rows] == [True, False, False]
    assert [r.supersedable for r in rows] == [False, True, False]


def test_superseding_drops_only_waiting_screens_of_that_chat(store: Store) -> None:
    answer = store.add_outgoing(1, "answer")
    old_screen = store.add_outgoing(1, "step 5", supersedable=True)
    sent_screen = store.add_outgoing(1, "step 4", supersedable=True)
    store.mark_attempted(sent_screen.row_id)  # already on its way: too late to take back
    other_chat = store.add_outgoing(2, "step 2", supersedable=True)
    new_screen = store.add_outgoing(1, "step 6", supersedable=True)

    assert store.supersede_outgoing(1, before=new_screen.row_id) == [old_screen.row_id]
    assert [r.row_id for r in store.outgoing()] == [
        answer.row_id, sent_screen.row_id, other_chat.row_id, new_screen.row_id,
    ]


def test_delivered_rows_are_deleted_and_an_edit_can_become_a_send(store: Store) -> None:
    edit = store.add_outgoing(1, "x", target=99)
    done = store.add_outgoing(1, "y")
    store.retarget_outgoing(edit.row_id, None)
    store.delete_outgoing([done.row_id])
    [left] = store.outgoing()
    assert (left.row_id, left.target) == (edit.row_id, None)


def test_a_gone_chat_is_forgotten_whole(store: Store) -> None:
    store.save_session(1, STATE)
    store.set_session_owner(1, "ab12cd", 77, "Ann")
    store.add_outgoing(1, "step 4")
    store.save_session(2, STATE)
    store.forget_chat(1)
    assert store.load_session(1) is None and store.session_owner(1) is None
    assert store.outgoing() == []
    assert store.session_chat_ids() == [2]


def test_session_owners_are_replaced_per_chat(store: Store) -> None:
    store.set_session_owner(-100, "aaaaaa", 1, "Ann")
    store.set_session_owner(-100, "bbbbbb", 2, "Ben")
    owner = store.session_owner(-100)
    assert owner is not None and (owner.run_id, owner.user_id, owner.name) == ("bbbbbb", 2, "Ben")


def test_prune_drops_what_is_past_its_keep_time(path: Path) -> None:
    now = [1_000_000.0]
    with Store.open(
        path, now=lambda: now[0], seen_keep_seconds=100, session_keep_seconds=50,
        outbox_keep_seconds=30,
    ) as store:
        store.mark_update_seen(1)
        store.save_session(1, STATE)
        store.set_session_owner(1, "ab12cd", 7, "Ann")
        store.add_outgoing(1, "old")
        now[0] += 40
        store.add_outgoing(2, "new")
        store.save_session(2, STATE)
        assert store.prune().outbox == 1
        now[0] += 20  # chat 1's session is now 60 s old
        pruned = store.prune()
        assert (pruned.sessions, pruned.owners, pruned.seen_updates) == (1, 1, 0)
        now[0] += 50
        assert store.prune().seen_updates == 1
        assert [r.body for r in store.outgoing()] == []  # "new" is 70 s old by now
        assert store.session_chat_ids() == []


def test_a_database_from_the_previous_version_is_upgraded_in_place(path: Path) -> None:
    from bot.store import MIGRATIONS

    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO active_sessions VALUES (1, '{\"step\": 2}', 1e12)")
    db.commit()
    db.close()
    with Store.open(path) as store:
        assert store.load_session(1) == {"step": 2}
        store.add_outgoing(1, "works")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
