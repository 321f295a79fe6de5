"""`massage-bot chat | run | ask | check | eval | misses | pictures`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import yaml

from bot.clock import ScaledClock, carry_on
from bot.knowledge import KnowledgeBase, KnowledgeError, check_knowledge, load_knowledge
from bot.matcher import Match, Matcher, cached_text_words
from bot.settings import EXIT_CONFIG, SETTING_HELP, Settings, SettingsError, load_settings
from bot.store import Store, StoreError

TERMINAL_DATABASE = "terminal.sqlite3"
TERMINAL_HISTORY = "terminal-history"
# The terminal chat's clock anchor, kept with its sessions (bot/clock.py: carry_on).
CLOCK_PREFERENCE = "clock"


def _knowledge_dir(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.kb) if getattr(args, "kb", None) else settings.knowledge_dir


def _print_problems(problems: Sequence[object], out: TextIO) -> None:
    for problem in problems:
        print(problem, file=out)
    print(f"{len(problems)} problem(s) in the knowledge base.", file=out)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    directory = Path(args.dir) if args.dir else settings.knowledge_dir
    knowledge, problems = check_knowledge(directory)
    if knowledge is None:
        _print_problems(problems, sys.stdout)
        return 1
    for problem in problems:
        print(problem)
    if problems:
        # The bot would run on it, but a clean check is what an author aims for (and CI holds).
        print(f"{directory}: loads ({knowledge.summary()}), with {len(problems)} warning(s) "
              "to fix.")
        return 1
    print(f"{directory}: OK: {knowledge.summary()}")
    return 0


def match_json(query: str, match: Match) -> str:
    return json.dumps(
        {
            "query": query,
            "decision": match.decision,
            "topic": match.topic if match.decision == "answer" else None,
            **({"smalltalk": match.smalltalk} if match.decision == "smalltalk" else {}),
            **({"caution": match.caution} if match.caution else {}),
            "candidates": [
                {
                    "topic": c.topic,
                    "score": round(c.score, 2),
                    "phrasing": c.phrasing,
                    "words": list(c.words),
                }
                for c in match.candidates
            ],
        },
        ensure_ascii=False,
    )


def cmd_ask(args: argparse.Namespace, knowledge: KnowledgeBase) -> int:
    from bot.conversation import reply_for_match
    from bot.terminal import render_text

    matcher = Matcher(knowledge)
    if args.question:
        query = " ".join(args.question)
        match = matcher.match(query)
        if args.json:
            print(match_json(query, match))
        else:
            text, _choices = render_text(reply_for_match(match, knowledge))
            print(text)
        return 0
    if not args.json:
        print("massage-bot ask: give a question, or --json to read questions from stdin",
              file=sys.stderr)
        return 2
    for line in sys.stdin:
        query = line.rstrip("\n")
        print(match_json(query, matcher.match(query)), flush=True)
    return 0


def cmd_eval(args: argparse.Namespace, knowledge: KnowledgeBase) -> int:
    from bot.evaluation import (
        Floors,
        cross_validate,
        evaluate,
        format_report,
        load_questions,
    )

    if args.cross_validate == bool(args.file):
        print("massage-bot eval: give a questions FILE or --cross-validate (not both)",
              file=sys.stderr)
        return 2
    if args.cross_validate:
        words_of = cached_text_words()
        report = cross_validate(
            knowledge, lambda reduced: Matcher(reduced, words_of=words_of), args.folds
        )
    else:
        try:
            questions = load_questions(Path(args.file))
        except (ValueError, yaml.YAMLError) as error:
            # A file of misses being labelled: an entry left empty, or a slip in the YAML.
            print(f"massage-bot eval: {error}", file=sys.stderr)
            return 1
        unknown = sorted({t for q in questions for t in q.expect} - set(knowledge.topics))
        if unknown:
            print(f"massage-bot eval: {args.file}: expect names unknown topic id(s): "
                  f"{', '.join(unknown)}", file=sys.stderr)
            return 1
        report = evaluate(questions, Matcher(knowledge))
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
    breaches = Floors(args.min_direct, args.max_wrong, args.max_oos).breaches(report)
    for breach in breaches:
        print(f"massage-bot eval: below target: {breach}", file=sys.stderr)
    return 1 if breaches else 0


def cmd_misses(args: argparse.Namespace, settings: Settings, knowledge: KnowledgeBase) -> int:
    """The misses log of the Telegram bot and the terminal chat (or the given databases),
    grouped into clusters, for the knowledge base's author."""
    from datetime import timedelta

    from bot.misses import log_day
    from bot.misses_report import FORMATS, Report, cluster, fit_similarity

    if args.since is not None and args.since < 1:
        print("massage-bot misses: --since must be at least 1 day", file=sys.stderr)
        return 2
    paths = [Path(p) for p in args.db] if args.db else [
        settings.database_path, settings.data_dir / TERMINAL_DATABASE
    ]
    found = [path for path in paths if path.is_file()]
    if args.db and len(found) < len(paths):
        missing = next(path for path in paths if not path.is_file())
        print(f"massage-bot misses: no such database: {missing}", file=sys.stderr)
        return 1
    if not found:
        print(f"massage-bot misses: nothing logged yet in {settings.data_dir} (run the bot "
              "or the chat first, with MISSES_LOG on)", file=sys.stderr)
    rows = []
    since = ""
    for path in found:
        with Store.open(path) as store:
            if args.since is not None:
                since = (log_day(store) - timedelta(days=args.since - 1)).isoformat()
            rows += store.misses(since)
    report = Report(cluster(rows, fit_similarity(knowledge)), knowledge, Matcher(knowledge),
                    since)
    print(FORMATS[args.format](report))
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings, knowledge: KnowledgeBase) -> int:
    from bot.conversation import Conversation
    from bot.misses import MissesPolicy
    from bot.pictures import PICTURES_DIR, PictureFiles
    from bot.terminal import TERMINAL_CHAT_ID, TerminalChat, run_chat

    interactive = sys.stdin.isatty()
    # The terminal keeps its own database so it never touches the Telegram bot's chats.
    store = Store.open(settings.data_dir / TERMINAL_DATABASE)
    history = settings.data_dir / TERMINAL_HISTORY
    if interactive:
        _load_history(history)
    try:
        clock = terminal_clock(store, TERMINAL_CHAT_ID, args.speed)
        conversation = Conversation(
            knowledge=knowledge, matcher=Matcher(knowledge), store=store, clock=clock,
            misses_policy=MissesPolicy.from_settings(settings, "terminal"),
        )
        chat = TerminalChat(conversation=conversation, clock=clock, out=sys.stdout,
                            pictures=PictureFiles(settings.data_dir / PICTURES_DIR))
        return run_chat(chat, read_line=input if interactive else _read_stdin_line,
                        interactive=interactive)
    finally:
        store.close()
        if interactive:
            _save_history(history)


def cmd_pictures(args: argparse.Namespace, knowledge: KnowledgeBase) -> int:
    try:
        from bot.pictures import write_all
        written = write_all(knowledge, Path(args.dir))
    except ImportError as error:  # a venv installed before Pillow joined the dependencies
        print(f"massage-bot: cannot draw pictures ({error}); run make to reinstall",
              file=sys.stderr)
        return 1
    except OSError as error:
        print(f"massage-bot: cannot write the pictures to {args.dir}: {error.strerror}",
              file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def terminal_clock(store: Store, chat_id: int, speed: float) -> ScaledClock:
    """The chat's clock at `speed` (--speed), saved with its sessions.

    A saved session's times are in the clock of the run that saved it; with --speed that
    clock runs ahead of the wall, so each run carries on from the last one's, at its own
    speed, and the session's deadlines and "Time taken" stay true. With no session saved
    the clock starts again from the wall time.
    """
    saved = store.preference(chat_id, CLOCK_PREFERENCE)
    resumed = store.load_session(chat_id) is not None
    clock = carry_on(saved if resumed else None, speed)
    store.set_preference(chat_id, CLOCK_PREFERENCE, clock.anchor())
    return clock


def _load_history(path: Path) -> None:
    """Line editing and history (arrow keys) for input(), where readline exists."""
    try:
        import readline
    except ImportError:
        return
    readline.set_history_length(500)
    # First run, or an unreadable file: start with no history.
    with contextlib.suppress(OSError):
        readline.read_history_file(path)


def _save_history(path: Path) -> None:
    try:
        import readline

        readline.write_history_file(path)
    except (ImportError, OSError):
        pass  # history is a convenience; never fail the chat over it


def _read_stdin_line(_prompt: str) -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line


def cmd_run(settings: Settings) -> int:
    from bot.telegram_app import run_bot

    return run_bot(settings)


# The settings each command reads, for its --help (all come from the environment or .env).
CHAT_SETTINGS = ("DATA_DIR", "KNOWLEDGE_DIR", "MISSES_LOG", "MISSES_KEEP_DAYS")
RUN_SETTINGS = tuple(SETTING_HELP)  # all of them (bot/settings.py: BOT_ONLY are run's alone)
KNOWLEDGE_ONLY = ("KNOWLEDGE_DIR",)
MISSES_SETTINGS = ("DATA_DIR", "KNOWLEDGE_DIR")


HELP_WIDTH = 79


def settings_epilog(names: Sequence[str], before: str = "") -> str:
    """The end of a command's --help: the settings it reads and what each does."""
    width = max(len(name) for name in names)
    indent = " " * (width + 4)
    lines = [
        textwrap.fill(f"  {name:<{width}}  {SETTING_HELP[name]}", HELP_WIDTH,
                      subsequent_indent=indent)
        for name in names
    ]
    heading = textwrap.fill(
        "settings read (from the environment, or from .env in the current directory; the "
        "environment wins):", HELP_WIDTH,
    )
    return (textwrap.fill(before, HELP_WIDTH) + "\n\n" if before else "") + (
        heading + "\n" + "\n".join(lines)
    )


def _add_kb_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kb", metavar="DIR",
                        help="knowledge base directory (instead of KNOWLEDGE_DIR)")


def _command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str,
             description: str, settings: Sequence[str], before: str = ""
             ) -> argparse.ArgumentParser:
    # Raw, so the settings stay a table; the prose is wrapped here instead.
    return sub.add_parser(
        name, help=help, description=textwrap.fill(description, HELP_WIDTH),
        epilog=settings_epilog(settings, before),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="massage-bot",
        description="A back massage assistant: terminal chat, Telegram bot and tools.",
    )
    sub = parser.add_subparsers(dest="command")
    chat = _command(
        sub, "chat", "chat in the terminal (default; no token needed)",
        "The assistant in the terminal: ask questions, or type /session for a guided session "
        "with timers. Progress is kept in DATA_DIR/terminal.sqlite3, so quitting (or a crash) "
        "loses nothing.", CHAT_SETTINGS,
    )
    _add_kb_option(chat)
    chat.add_argument(
        "--speed", type=float, default=1.0, metavar="N",
        help="run session timers N times faster, to try a session quickly (a 4-minute step "
        "takes 4 s at 60); a session saved at one speed carries on in step at another",
    )
    _command(
        sub, "run", "run the Telegram bot (needs TELEGRAM_BOT_TOKEN)",
        "Run the Telegram bot until SIGINT or SIGTERM: long polling, or a webhook server when "
        "WEBHOOK_URL is set. It takes no arguments; everything is a setting.", RUN_SETTINGS,
        "exit codes: 0 stopped; 78 a setting, the token, the knowledge base or the store is "
        "wrong (will not heal, so the service unit does not restart it); 1 the Bot API could "
        "not be reached (may heal).",
    )
    ask = _command(
        sub, "ask", "answer one question, or JSON lines from stdin",
        "Answer one question as the chat would, or with --json print how the matcher decided; "
        "with --json and no question, read one question a line from stdin and print one JSON "
        "object a line.", KNOWLEDGE_ONLY,
    )
    ask.add_argument("question", nargs="*", help="the question, e.g. how do i do petrissage")
    ask.add_argument("--json", action="store_true",
                     help="print the match as JSON: decision, topic and the best candidates")
    _add_kb_option(ask)
    check = _command(
        sub, "check", "validate the knowledge base",
        "Validate the knowledge base: exit 0 when clean, 1 with each problem on a line.",
        KNOWLEDGE_ONLY,
    )
    check.add_argument("dir", nargs="?", help="knowledge base directory (default: "
                       "KNOWLEDGE_DIR)")
    pictures = _command(
        sub, "pictures", "write every diagram as a PNG, to look at",
        "Draw every picture of the knowledge base into DIR as <id>.png, to look at after "
        "editing knowledge/pictures.yaml (massage-bot check validates them).", KNOWLEDGE_ONLY,
    )
    pictures.add_argument("dir", help="directory to write them to (made if missing)")
    _add_kb_option(pictures)
    evaluation = _command(
        sub, "eval",
        "score the matcher on a questions file, or cross-validate it on the knowledge base",
        "Score the matcher. With FILE (a YAML list of {q, expect, style}), on those "
        "questions; with --cross-validate, on the knowledge base's own aliases, questions and "
        "out-of-scope phrasings, each asked with the index rebuilt without it. Exit 1 when a "
        "--min-direct, --max-wrong or --max-oos target is missed.", KNOWLEDGE_ONLY,
    )
    evaluation.add_argument("file", nargs="?", help="questions file, e.g. questions-dev.yaml")
    evaluation.add_argument("--cross-validate", action="store_true",
                            help="leave-one-out over the knowledge base's own phrasings")
    evaluation.add_argument("--folds", type=int, metavar="K",
                            help="with --cross-validate: K groups instead of one at a time")
    evaluation.add_argument("--json", action="store_true", help="the whole report as JSON")
    evaluation.add_argument("--min-direct", type=float, metavar="PCT",
                            help="exit 1 if direct-correct is below PCT")
    evaluation.add_argument("--max-wrong", type=float, metavar="PCT",
                            help="exit 1 if wrong answers are above PCT")
    evaluation.add_argument("--max-oos", type=float, metavar="PCT",
                            help="exit 1 if out-of-scope questions answered are above PCT")
    _add_kb_option(evaluation)
    misses = _command(
        sub, "misses",
        "what people asked and didn't get, grouped, for the knowledge base's author",
        "The misses log (messages that got a did-you-mean or a fallback, answers "
        "marked not what was asked) grouped into clusters of similar messages, biggest first: "
        "how many, examples, what was offered, what people picked, and what the knowledge base "
        "does with them now. --format yaml writes evaluation entries {q, expect, style} to "
        "label and review into knowledge/examples/.", MISSES_SETTINGS,
    )
    misses.add_argument("--since", type=int, metavar="DAYS",
                        help="only the last DAYS days (default: the whole log)")
    misses.add_argument("--format", choices=("text", "yaml", "json"), default="text")
    misses.add_argument("--db", action="append", metavar="FILE",
                        help="a database to read (repeatable; default: the bot's and the "
                        "terminal chat's in DATA_DIR)")
    _add_kb_option(misses)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments or ["chat"])  # the chat is the default
    command = args.command
    try:
        settings = load_settings(bot=command == "run")
        if command == "check":
            return cmd_check(args, settings)
        if command == "run":
            return cmd_run(settings)
        if command == "chat" and args.speed <= 0:
            raise SettingsError("--speed must be positive")
        # Scoring the matcher needs no menus, so a small test knowledge base will do.
        knowledge = load_knowledge(
            _knowledge_dir(args, settings), require_contract=command != "eval"
        )
        if command == "ask":
            return cmd_ask(args, knowledge)
        if command == "eval":
            return cmd_eval(args, knowledge)
        if command == "misses":
            return cmd_misses(args, settings, knowledge)
        if command == "pictures":
            return cmd_pictures(args, knowledge)
        return cmd_chat(args, settings, knowledge)
    except KnowledgeError as error:
        _print_problems(error.problems, sys.stderr)
        return 1
    except (SettingsError, StoreError) as error:
        print(f"massage-bot: {error}", file=sys.stderr)
        # The bot's supervisor must not restart on a setting that will not heal.
        return EXIT_CONFIG if command == "run" else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `massage-bot misses | head`: the reader has all it wanted.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (nothing more is written)
        return 0
    except FileNotFoundError as error:
        print(f"massage-bot: {error.strerror}: {error.filename}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
