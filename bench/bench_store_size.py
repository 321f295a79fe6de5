"""How big the SQLite store gets: 100,000 updates through the real bot, days of them.

Our bot runs in this process against the local Bot API stand-in, with a clock SPEED times
faster than life for the conversation and the store (an hour a second), so the 100,000
updates span days and the keep times bite: seen update ids two days, sessions and
undelivered messages twelve hours. The store is pruned every PRUNE_EVERY real seconds (so
every ten simulated hours; in production it is every ten minutes). Flood limits are lifted:
at Telegram's 30 a second, 100,000 updates would take an hour.

USERS people take turns; each sends the next message of a script that asks questions,
runs guided sessions by typed commands (hands-free, so timers fire), stops them, ticks the
checklist and changes settings. After every REPORT_EVERY updates the file sizes (database
and its write-ahead log) and the rows of each table are printed.

Usage: .venv/bin/python bench/bench_store_size.py [--updates 100000]
Prints figures; never fails on size.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the bot package and the stand-in

from standin import StandIn, User, bot_settings  # noqa: E402

SPEED = 3600.0
PRUNE_EVERY = 10.0
USERS = 5000
BATCH = 1000
REPORT_EVERY = 10_000
TABLES = ("seen_updates", "active_sessions", "outbox", "session_owners", "preferences",
          "checklist_ticks")


def script(questions: list[str], safety_questions: int) -> list[str]:
    """What one person sends, over and over."""
    return [
        "/start", questions[0], "/start session-quick-back", *["no"] * safety_questions,
        "ready", "next", "next", questions[1], "pause", "resume", "/stop", "/equipment",
        "/settings", questions[2], "/session", "/help",
    ]


def sizes(path: Path) -> tuple[int, int]:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


def rows(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in TABLES}
    finally:
        db.close()


async def run(updates: int) -> None:
    from bot.clock import ScaledClock
    from bot.conversation import Conversation
    from bot.knowledge import load_knowledge
    from bot.matcher import Matcher
    from bot.store import Store
    from bot.telegram_app import TelegramOptions, build_application, front_end_of, serve
    from bot.telegram_flood import FloodLimits

    knowledge = load_knowledge(ROOT / "knowledge")
    asked = [q for topic in knowledge.topics.values() for q in topic.questions]
    clock = ScaledClock(speed=SPEED)
    async with StandIn(keep_outputs=2000) as api:
        with tempfile.TemporaryDirectory() as data_dir:
            settings = bot_settings(api, data_dir, LOG_LEVEL="WARNING")
            store = Store.open(settings.database_path, now=clock.now)
            conversation = Conversation(knowledge=knowledge, matcher=Matcher(knowledge),
                                        store=store, clock=clock)
            options = TelegramOptions(flood=FloodLimits.unlimited(),
                                      prune_every_seconds=PRUNE_EVERY)
            app = build_application(settings, conversation, clock, options)
            stop = asyncio.Event()
            task = asyncio.get_running_loop().create_task(serve(app, settings, options, stop))
            await api.wait_for(lambda: api.received.get("getUpdates", 0) > 0, 60,
                               what="the bot to poll")
            front = front_end_of(app)
            people = [User(api, user_id=50_000 + n) for n in range(USERS)]
            lines = [script(asked[n % len(asked):] + asked, len(knowledge.safety_check))
                     for n in range(USERS)]
            started = time.perf_counter()
            print(f"{updates} updates from {USERS} people; simulated time runs {SPEED:g}x")
            print(f"{'updates':>8} {'days':>5} {'db KiB':>8} {'wal KiB':>8}  rows per table")
            sent = 0
            turn = 0
            while sent < updates:
                batch = []
                for _ in range(min(BATCH, updates - sent)):
                    n = turn % USERS
                    text = lines[n][(turn // USERS) % len(lines[n])]
                    batch.append(people[n].text_update(text))
                    turn += 1
                api.push_many(batch)
                sent += len(batch)
                await api.wait_for(
                    lambda: not api.updates and app.update_queue.qsize() == 0
                    and front.outbox.waiting < 200, 300, what="the bot to catch up")
                if sent % REPORT_EVERY == 0 or sent == updates:
                    db, wal = sizes(settings.database_path)
                    days = (clock.now() - clock.origin) / 86400
                    counts = " ".join(f"{t}={c}" for t, c in rows(settings.database_path).items())
                    print(f"{sent:>8} {days:5.1f} {db / 1024:8.0f} {wal / 1024:8.0f}  {counts}")
            seconds = time.perf_counter() - started
            stop.set()
            await asyncio.wait_for(task, 60)
            store.close()
            db, wal = sizes(settings.database_path)
            print(f"done in {seconds:.0f} s ({updates / seconds:.0f} updates/s); after shutdown "
                  f"the store is {db / 1024:.0f} KiB (+ {wal / 1024:.0f} KiB write-ahead log)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(run(args.updates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
