"""Reply latency with Telegram's flood limits on: our bot against a bare PTB bot with the same
limits, for 100 and 300 people at once.

Each bot runs in its own process (its own CPU where there are two) against the local Bot API
stand-in (tests/standin.py). Our bot runs as `massage-bot run` does, production settings and
all: the outbox keeps Telegram's limits (30 messages a second overall, one a second per
chat in bursts of three, 20 a minute per group). The bare bot is PTB's plain Application
with concurrent updates and the same limits as a PTB rate limiter (FloodLimiter, adapted
below); it echoes text and edits the message whose button was pressed, which is the least
any bot must do.

Every simulated person acts, waits for the answer, thinks 3 to 7 seconds and acts again, for
`--seconds`: half the time a question (a new message back), half the time a press on the
checklist's first tick (an edit, and the spinner answer). A reply is the first message in
the person's chat after they acted; its latency is from the update's arrival at the
stand-in to that message's; a spinner's is to the answerCallbackQuery. A reply that has not
come LOST_AFTER seconds after the last action is lost.

100 people acting every ~5 s ask for ~20 messages a second: under Telegram's overall limit.
300 ask for ~60: over it, so replies wait their turn at 30 a second whatever the bot (that
is Telegram's floor, not the bot's); the spinners, which are not counted, must not.

Usage: .venv/bin/python bench/bench_telegram_load.py [--users 100 300] [--seconds 30]
Prints figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the bot package and the stand-in

from bench_telegram import (  # noqa: E402
    BOT_CPU,
    STAND_IN_CPU,
    cpu_seconds,
    pin,
    questions,
    report_peak_memory,
)
from standin import MESSAGE_METHODS, TOKEN, Call, Output, StandIn, User  # noqa: E402

THINK_SECONDS = (3.0, 7.0)
LOST_AFTER = 60.0
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SPINNER_TARGET = 1.0


# --- the two bots, each in its own process ---------------------------------------------------


def run_bare(base_url: str) -> int:
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
    from telegram.error import RetryAfter
    from telegram.ext import (
        ApplicationBuilder,
        BaseRateLimiter,
        CallbackQueryHandler,
        ContextTypes,
        MessageHandler,
        filters,
    )

    from bot.telegram_flood import FloodLimiter, FloodLimits

    class SameFloodLimits(BaseRateLimiter[None]):
        """Our FloodLimiter as a PTB rate limiter: sends and edits wait their turn."""

        def __init__(self) -> None:
            self.limiter = FloodLimiter(FloodLimits())

        async def initialize(self) -> None:
            """Nothing to set up."""

        async def shutdown(self) -> None:
            """Nothing to tear down."""

        async def process_request(  # type: ignore[override]
            self, callback: Any, args: Any, kwargs: dict[str, Any], endpoint: str,
            data: dict[str, Any], rate_limit_args: None,
        ) -> Any:
            chat_id = data.get("chat_id")
            if endpoint in MESSAGE_METHODS and isinstance(chat_id, int):
                while (wait := max(self.limiter.overall_wait(),
                                   self.limiter.chat_wait(chat_id))) > 0:
                    await asyncio.sleep(wait)
                self.limiter.take(chat_id)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                await asyncio.sleep(error._retry_after.total_seconds())
                return await callback(*args, **kwargs)

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("tick", callback_data="tick")]])
    presses = 0

    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(update.message.text, reply_markup=keyboard)

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        nonlocal presses
        query = update.callback_query
        assert query is not None
        await query.answer()
        presses += 1
        await query.edit_message_text(f"ticked {presses}", reply_markup=keyboard)

    app = (ApplicationBuilder().token(TOKEN).base_url(base_url).rate_limiter(SameFloodLimits())
           .concurrent_updates(True).build())
    app.add_handler(MessageHandler(filters.TEXT, on_text))
    app.add_handler(CallbackQueryHandler(on_press))
    app.run_polling()
    report_peak_memory()
    return 0


def run_ours(base_url: str, data_dir: str) -> int:
    from bot.settings import load_settings
    from bot.telegram_app import run_bot

    settings = load_settings(
        {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_BASE_URL": base_url,
            "DATA_DIR": data_dir,
            "KNOWLEDGE_DIR": str(ROOT / "knowledge"),
            "LOG_LEVEL": "WARNING",
        },
        dotenv=None,
    )
    code = run_bot(settings)  # production options: the flood limits on
    report_peak_memory()
    return code


# --- the people ------------------------------------------------------------------------------


@dataclass
class Watch:
    """What the stand-in saw, timed the moment it happened."""

    arrivals: dict[int, asyncio.Queue[tuple[float, Output]]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue))
    pushed_queries: dict[str, float] = field(default_factory=dict)
    spinner_seconds: list[float] = field(default_factory=list)
    message_times: list[float] = field(default_factory=list)
    per_chat_times: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def __call__(self, event: Call | Output) -> None:
        now = time.perf_counter()
        if isinstance(event, Output):
            self.arrivals[event.chat_id].put_nowait((now, event))
            self.message_times.append(now)
            self.per_chat_times[event.chat_id].append(now)
        elif event.method == "answerCallbackQuery" and not event.error:
            pushed = self.pushed_queries.pop(str(event.params.get("callback_query_id")), None)
            if pushed is not None:
                self.spinner_seconds.append(now - pushed)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    lost: int = 0
    actions: int = 0


async def person(api: StandIn, watch: Watch, user: User, first: str, texts: list[str],
                 until: float, tally: Tally, rng: random.Random) -> None:
    arrivals = watch.arrivals[user.chat_id]

    async def act(update: dict[str, Any]) -> Output | None:
        while not arrivals.empty():  # a second part of the last reply, if any
            arrivals.get_nowait()
        pushed = time.perf_counter()
        if "callback_query" in update:
            watch.pushed_queries[update["callback_query"]["id"]] = pushed
        api.push(update)
        tally.actions += 1
        try:
            arrived, output = await asyncio.wait_for(arrivals.get(), LOST_AFTER)
        except TimeoutError:
            tally.lost += 1
            return None
        tally.latencies.append(arrived - pushed)
        return output

    await asyncio.sleep(rng.uniform(0, THINK_SECONDS[1]))  # people do not all start at once
    screen = await act(user.text_update(first))
    while screen is not None and time.perf_counter() < until:
        await asyncio.sleep(rng.uniform(*THINK_SECONDS))
        if rng.random() < 0.5:
            reply = await act(user.text_update(rng.choice(texts)))
            if reply is None:
                return
        else:
            pressed = await act(user.press_update(screen, screen.buttons[0][1]))
            if pressed is None:
                return
            screen = pressed


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def peak_in_a_second(times: list[float]) -> int:
    window: deque[float] = deque()
    peak = 0
    for moment in sorted(times):
        window.append(moment)
        while window[0] <= moment - 1.0:
            window.popleft()
        peak = max(peak, len(window))
    return peak


@dataclass(frozen=True)
class Result:
    role: str
    users: int
    tally: Tally
    spinners: list[float]
    unanswered: int
    peak_overall: int
    peak_chat: int
    cpu: float
    peak_kb: int


async def measure(role: str, users: int, seconds: float, texts: list[str]) -> Result:
    watch = Watch()
    async with StandIn(keep_outputs=5000) as api:
        api.observers.append(watch)
        with tempfile.TemporaryDirectory() as data_dir:
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--role", role, "--base-url", api.base_url,
                "--data-dir", data_dir, stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            pin(child.pid, BOT_CPU)
            tally = Tally()
            try:
                await api.wait_for(lambda: api.received.get("getUpdates", 0) > 0,
                                   READY_TIMEOUT, what=f"the {role} bot to poll")
                rng = random.Random(users)
                first = "/equipment" if role == "ours" else "/start"
                cpu_before = cpu_seconds(child.pid)
                until = time.perf_counter() + seconds
                await asyncio.gather(*(
                    person(api, watch, User(api, user_id=30_000 + n), first, texts, until,
                           tally, random.Random(rng.random()))
                    for n in range(users)
                ))
                cpu = cpu_seconds(child.pid) - cpu_before
            finally:
                if child.returncode is None:
                    child.send_signal(signal.SIGTERM)
                out, _ = await asyncio.wait_for(child.communicate(), STOP_TIMEOUT)
    peak = 0
    for line in out.decode().splitlines():
        if line.startswith("{"):
            peak = int(json.loads(line)["peak_kb"])
    return Result(
        role=role, users=users, tally=tally, spinners=watch.spinner_seconds,
        unanswered=len(watch.pushed_queries), peak_overall=peak_in_a_second(watch.message_times),
        peak_chat=max((peak_in_a_second(t) for t in watch.per_chat_times.values()), default=0),
        cpu=cpu, peak_kb=peak,
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.0f} ms"


def show(result: Result) -> None:
    tally = result.tally
    late = [s for s in result.spinners if s > SPINNER_TARGET]
    print(
        f"  {result.role:>4}: {len(tally.latencies)} replies to {tally.actions} actions, "
        f"lost {tally.lost}; reply p50 {ms(percentile(tally.latencies, 0.5))}, "
        f"p90 {ms(percentile(tally.latencies, 0.9))}, "
        f"p99 {ms(percentile(tally.latencies, 0.99))}, "
        f"max {ms(max(tally.latencies, default=float('nan')))}"
    )
    print(
        f"        spinners: {len(result.spinners)} answered, {result.unanswered} not; "
        f"p50 {ms(percentile(result.spinners, 0.5))}, p99 {ms(percentile(result.spinners, 0.99))}, "
        f"max {ms(max(result.spinners, default=float('nan')))}, {len(late)} over "
        f"{SPINNER_TARGET:g} s"
    )
    print(
        f"        most messages in any second: {result.peak_overall} overall (limit 30), "
        f"{result.peak_chat} in one chat; bot CPU {result.cpu:5.1f} s; "
        f"peak RSS {result.peak_kb / 1024:5.1f} MiB"
    )


async def drive(user_counts: list[int], seconds: float) -> None:
    pin(os.getpid(), STAND_IN_CPU)
    texts = questions()
    for users in user_counts:
        print(f"{users} people for {seconds:g} s, flood limits on:")
        for role in ("ours", "bare"):
            result = await measure(role, users, seconds, texts)
            show(result)
        sys.stdout.flush()
    print("targets: 100 people p50 <= 300 ms, p99 <= 1.5 s, none lost; "
          "300 people none lost, every spinner within 1 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--role", choices=("ours", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "bare":
        return run_bare(args.base_url)
    if args.role == "ours":
        return run_ours(args.base_url, args.data_dir)
    asyncio.run(drive(args.users, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
