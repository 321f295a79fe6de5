"""One checklist renderer: the guided session's equipment list and the /equipment list.

Both lists look and behave the same (one toggle button per item, a progress line), so a person
who ticked one knows how to tick the other.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from bot.replies import Button, Reply

# Longer labels get cut by Telegram clients anyway, and on a narrow phone a cut in the middle
# of a word reads worse than a cut at a word boundary with an ellipsis.
MAX_LABEL_CHARS = 40
TICKED = "✅"
UNTICKED = "⬜"


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


def checklist_reply(
    title: str,
    items: Sequence[str],
    ticked: Collection[int],
    tick_action: Callable[[int], str],
    extra_rows: Sequence[Sequence[Button]] = (),
    intro: str = "Tap an item to tick it off.",
) -> Reply:
    """A checklist message: `intro`, a progress line like "3 of 7 ready", one toggle per item.

    `tick_action(index)` gives the action of item `index`'s button; `extra_rows` follow the
    items (a "Ready" button, say). Indexes in `ticked` that are not items are ignored, so a
    list that got shorter since it was ticked still adds up.
    """
    done = sum(1 for index in range(len(items)) if index in ticked)
    rows: list[tuple[Button, ...]] = []
    truncated = False
    for index, item in enumerate(items):
        label = truncate_label(item)
        truncated = truncated or label != " ".join(item.split())
        mark = TICKED if index in ticked else UNTICKED
        rows.append((Button(f"{mark} {label}", tick_action(index)),))
    rows.extend(tuple(row) for row in extra_rows)
    parts = [intro] if intro else []
    if truncated:
        # A cut label loses words someone may need ("Gloves, if the skin is broken or ..."),
        # so the full items are spelled out once in the text.
        parts.append("\n".join(f"{index + 1}. {item}" for index, item in enumerate(items)))
    parts.append(f"{done} of {len(items)} ready")
    return Reply(text="\n\n".join(parts), title=title, buttons=tuple(rows))
