"""One checklist renderer: the guided session's equipment list and the /equipment list.

Both lists look and behave the same (one toggle button per item, a progress line), so a person
who ticked one knows how to tick the other. The items are listed once, as their buttons, with
the whole item as the label and a shortened one for narrow screens (Telegram's buttons).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from bot.replies import Button, Reply

# Longer labels get cut by Telegram clients anyway, and on a narrow phone a cut in the middle
# of a word reads worse than a cut at a word boundary with an ellipsis.
MAX_LABEL_CHARS = 40
TICKED = "☑"
UNTICKED = "☐"


def truncate_label(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """`text` on one line, at most `limit` characters, cut at a word boundary when possible."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    # Cutting at a space is nicer, unless it throws away most of the label.
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-(") + "…"


def progress(items: Sequence[str], ticked: Collection[int]) -> str:
    """ "3 of 7 ready"; indexes in `ticked` that are not items are ignored, so a list that got
    shorter since it was ticked still adds up."""
    done = sum(1 for index in range(len(items)) if index in ticked)
    return f"{done} of {len(items)} ready"


def checklist_reply(
    title: str,
    items: Sequence[str],
    ticked: Collection[int],
    tick_action: Callable[[int], str],
    extra_rows: Sequence[Sequence[Button]] = (),
    intro: str = "",
) -> Reply:
    """A checklist message: `intro`, a progress line like "3 of 7 ready", one toggle per item.

    `tick_action(index)` gives the action of item `index`'s button; `extra_rows` follow the
    items (a "Ready" button, say).
    """
    rows: list[tuple[Button, ...]] = []
    for index, item in enumerate(items):
        mark = TICKED if index in ticked else UNTICKED
        label, short = f"{mark} {' '.join(item.split())}", f"{mark} {truncate_label(item)}"
        rows.append((Button(label, tick_action(index), short=short if short != label else ""),))
    rows.extend(tuple(row) for row in extra_rows)
    parts = [intro] if intro else []
    parts.append(progress(items, ticked))
    return Reply(text="\n\n".join(parts), title=title, buttons=tuple(rows))
