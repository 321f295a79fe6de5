"""A restart with 10,000 guided sessions running: how soon newcomers are answered, how late
the timers fire, how much memory it takes.

The store is filled with SESSIONS sessions on a timed step of the quick massage, as a busy
bot would leave them when it stops. Their timers end between OVERDUE_SECONDS before the
restart (the time ran out while the bot was down: each gets a "while I was offline" message
at once) and SPREAD_SECONDS after it. Hands-free is off in all of them, so each timer ends
in exactly one "Time's up" message and the session waits for Next: that keeps the bot at
about 10 messages a second, under Telegram's 30, so what is measured is the bot, not the
flood limit (a restart's overdue notices do queue behind it, as they must).

Our bot then starts as `massage-bot run` does, production settings and all, against the
local Bot API stand-in. From its first getUpdates a newcomer writes "/start" every
NEWCOMER_EVERY seconds for NEWCOMER_SECONDS; each is timed to its answer. Every "Time's up"
that arrives is timed against its timer's end, for the timers that end after the overdue
notices are all out. The bot's resident memory is sampled throughout.

Usage: .venv/bin/python bench/bench_telegram_restart.py [--sessions 10000] [--watch 150]
Prints figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the bot package and the stand-in

from bench_telegram import BOT_CPU, STAND_IN_CPU, cpu_seconds, pin  # noqa: E402
from bench_telegram_load import percentile  # noqa: E402
from standin import TOKEN, Call, Output, StandIn, User  # noqa: E402

SESSION = "quick-back"
OVERDUE_SECONDS = 60.0
SPREAD_SECONDS = 900.0
NEWCOMER_EVERY = 0.1
NEWCOMER_SECONDS = 20.0
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
OFFLINE = "while I was offline"


def fill_store(database: Path, sessions: int, rng: random.Random) -> dict[int, float]:
    """Save `sessions` running sessions; the wall-clock time each one's timer ends."""
    from bot.knowledge import load_knowledge
    from bot.session import Phase, SessionState, TimerPhase
    from bot.store import Store

    steps = load_knowledge(ROOT / "knowledge").sessions[SESSION].steps
    timed = [index for index, step in enumerate(steps) if step.seconds]
    ends: dict[int, float] = {}
    now = time.time()
    with Store.open(database) as store, store.transaction():
        for n in range(sessions):
            chat_id = 100_000 + n
            index = rng.choice(timed)
            end = now + rng.uniform(-OVERDUE_SECONDS, SPREAD_SECONDS)
            state = SessionState(
                run_id=f"{n:x}", session_id=SESSION, phase=Phase.STEP, hands_free=False,
                started_at=now - 600, step_index=index,
                step_started_at=end - (steps[index].seconds or 0), timer=TimerPhase.END,
                timer_seq=1, steps_done=index,
            )
            store.save_session(chat_id, state.to_dict())
            ends[chat_id] = end
    return ends


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Seen:
    """Messages as they arrive at the stand-in, timed by the wall clock."""

    newcomers: dict[int, float] = field(default_factory=dict)  # chat: when it wrote
    answered: dict[int, float] = field(default_factory=dict)  # newcomer chat: seconds
    offline_at: dict[int, float] = field(default_factory=dict)  # session chat: arrival
    times_up: dict[int, float] = field(default_factory=dict)  # session chat: arrival

    def __call__(self, event: Call | Output) -> None:
        if not isinstance(event, Output):
            return
        now = time.time()
        if event.chat_id in self.newcomers and event.chat_id not in self.answered:
            self.answered[event.chat_id] = now - self.newcomers[event.chat_id]
        elif OFFLINE in event.text:
            self.offline_at.setdefault(event.chat_id, now)
        elif "Time's up" in event.text:
            self.times_up.setdefault(event.chat_id, now)


async def restart(sessions: int, watch: float) -> None:
    pin(os.getpid(), STAND_IN_CPU)
    rng = random.Random(10)
    seen = Seen()
    async with StandIn(keep_outputs=2000) as api:
        api.observers.append(seen)
        with tempfile.TemporaryDirectory() as data_dir:
            started = time.time()
            ends = fill_store(Path(data_dir) / "massage-bot.sqlite3", sessions, rng)
            print(f"{sessions} sessions saved in {time.time() - started:.1f} s; "
                  f"{sum(end < time.time() for end in ends.values())} of them overdue")
            env = {
                **os.environ, "PYTHONPATH": str(ROOT), "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_BASE_URL": api.base_url, "DATA_DIR": data_dir,
                "KNOWLEDGE_DIR": str(ROOT / "knowledge"), "LOG_LEVEL": "INFO",
            }
            launched = time.time()
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "run", env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )
            pin(child.pid, BOT_CPU)
            restored_at: list[float] = []

            async def read_log() -> None:
                assert child.stderr is not None
                async for line in child.stderr:
                    if b"restored" in line and b"guided session" in line:
                        restored_at.append(time.time())

            reader = asyncio.ensure_future(read_log())
            peak_rss = 0
            try:
                await api.wait_for(lambda: api.received.get("getUpdates", 0) > 0,
                                   READY_TIMEOUT, what="the bot to poll")
                polling = time.time()
                cpu_at_poll = cpu_seconds(child.pid)
                print(f"polling {polling - launched:.2f} s after the process started")
                deadline = polling + watch
                next_newcomer = polling
                n = 0
                while time.time() < deadline:
                    now = time.time()
                    if now >= next_newcomer and now < polling + NEWCOMER_SECONDS:
                        newcomer = User(api, user_id=900_000 + n)
                        seen.newcomers[newcomer.chat_id] = now
                        api.push(newcomer.text_update("/start"))
                        n += 1
                        next_newcomer += NEWCOMER_EVERY
                    peak_rss = max(peak_rss, rss_kb(child.pid))
                    await asyncio.sleep(0.05)
                cpu = cpu_seconds(child.pid) - cpu_at_poll
            finally:
                if child.returncode is None:
                    child.send_signal(signal.SIGTERM)
                await asyncio.wait_for(child.wait(), STOP_TIMEOUT)
                reader.cancel()
    report(sessions, watch, seen, ends, polling, restored_at, cpu, peak_rss)


def report(sessions: int, watch: float, seen: Seen, ends: dict[int, float], polling: float,
           restored_at: list[float], cpu: float, peak_rss: int) -> None:
    if restored_at:
        print(f"all {sessions} sessions restored {restored_at[0] - polling:.2f} s after "
              "polling began (in the background: polling never waited)")
    waits = list(seen.answered.values())
    unanswered = len(seen.newcomers) - len(seen.answered)
    print(f"newcomers: {len(waits)} answered, {unanswered} not; "
          f"p50 {percentile(waits, 0.5):.3f} s, p99 {percentile(waits, 0.99):.3f} s, "
          f"max {max(waits, default=float('nan')):.3f} s (target: all within 2 s)")
    drained = max(seen.offline_at.values(), default=polling)
    print(f"catch-up: {len(seen.offline_at)} sessions told their time was up 'while I was "
          f"offline', the last {drained - polling:.1f} s after polling began (at the flood "
          "limit, after people's replies and timers ending now)")
    for label, first, last in (("during the catch-up", polling, drained),
                               ("after it", drained, polling + watch - 5)):
        due = [chat for chat, end in ends.items() if first < end <= last]
        late = [seen.times_up[chat] - ends[chat] for chat in due if chat in seen.times_up]
        caught_up = sum(chat in seen.offline_at for chat in due)  # ended before restored
        print(f"timers ending {label}: {len(late)} of {len(due)} said time's up "
              f"({caught_up} more ended before their session was back: caught up); late by "
              f"p50 {percentile(late, 0.5) * 1000:.0f} ms, p99 "
              f"{percentile(late, 0.99) * 1000:.0f} ms, max "
              f"{max(late, default=float('nan')) * 1000:.0f} ms (target: p99 within 1 s)")
    print(f"bot CPU over the {watch:g} s watched: {cpu:.1f} s; resident memory peak "
          f"{peak_rss / 1024:.0f} MiB (target <= 150 MiB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--watch", type=float, default=150.0)
    args = parser.parse_args()
    asyncio.run(restart(args.sessions, args.watch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
