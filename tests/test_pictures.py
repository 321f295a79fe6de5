"""The diagrams: every one drawn and looked at in a few pixels, the validator's words for a
wrong one, the cache on disk, and the picture in the terminal chat and the command."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest
from PIL import Image
from test_terminal import lines_reader

from bot.clock import ScaledClock
from bot.conversation import Conversation
from bot.diagrams import AREAS, SPINE_BOTTOM, SPINE_HALF_WIDTH, SPINE_TOP, TOWEL_TOP
from bot.knowledge import KnowledgeBase, check_knowledge
from bot.matcher import Matcher
from bot.pictures import (
    HANDS,
    MAX_HEIGHT,
    MIN_HEIGHT,
    WIDTH,
    PictureFiles,
    arrowheads,
    render,
    to_pixels,
)
from bot.store import Store
from bot.terminal import TerminalChat, run_chat

ROOT = Path(__file__).resolve().parent.parent
TECHNIQUE_WORDS = ("effleurage", "petrissage", "friction", "tapotement", "vibration", "strokes")


def image_of(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def work_green(colour: tuple[int, ...]) -> bool:
    """The "work here" fill over whatever is under it: green well above red and blue
    (the hands' blue and the pillows' sky blue have more blue than green)."""
    red, green, blue = colour[:3]
    return green > red + 20 and green > blue + 15


def near(colour: tuple[int, ...], target: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, target, strict=True))


def pixels_of_spine(knowledge: KnowledgeBase, picture_id: str, image: Image.Image
                    ) -> list[tuple[int, ...]]:
    """Every pixel of the spine's band, from the neck to the towel over the hips."""
    picture = knowledge.pictures[picture_id]
    (left, top) = to_pixels(picture, (-SPINE_HALF_WIDTH, SPINE_TOP))
    (right, bottom) = to_pixels(picture, (SPINE_HALF_WIDTH, min(SPINE_BOTTOM, TOWEL_TOP)))
    return [image.getpixel((x, y)) for x in range(round(left) + 1, round(right) - 1)
            for y in range(round(top) + 1, round(bottom) - 1)]


def test_every_picture_renders_at_a_phone_size(knowledge: KnowledgeBase) -> None:
    assert len(knowledge.pictures) >= 9
    for picture in knowledge.pictures.values():
        data = render(picture)
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), picture.id
        image = image_of(data)
        assert image.width == WIDTH
        assert MIN_HEIGHT <= image.height <= MAX_HEIGHT, (picture.id, image.height)
        assert len(data) < 100_000, (picture.id, len(data))  # small to upload and to commit
        # Drawn on: far from a blank page, with the title's ink at the top.
        colours = image.getcolors(maxcolors=100_000)
        assert colours is not None and len(colours) > 8, picture.id


def test_the_spine_and_kidneys_are_never_where_tapping_is_allowed(
    knowledge: KnowledgeBase,
) -> None:
    picture = knowledge.pictures["tapotement"]
    image = image_of(render(picture))
    spine = pixels_of_spine(knowledge, "tapotement", image)
    assert spine and not any(work_green(p) for p in spine)
    # The kidney area is marked "never" too, and the tops of the shoulders are green: the
    # test would see a "tap here" colour if it were drawn there.
    for polygon in AREAS["kidneys"].polygons:
        centre = (sum(x for x, _ in polygon) / len(polygon), sum(y for _, y in polygon)
                  / len(polygon))
        assert not work_green(image.getpixel(to_pixels(picture, centre)))
    assert work_green(image.getpixel(to_pixels(picture, (-20.0, 40.0))))


@pytest.mark.parametrize("picture_id", ["effleurage", "petrissage", "tapotement", "friction",
                                        "vibration", "finishing", "gentle-strokes"])
def test_no_worked_area_covers_the_spine(knowledge: KnowledgeBase, picture_id: str) -> None:
    image = image_of(render(knowledge.pictures[picture_id]))
    assert not any(work_green(p) for p in pixels_of_spine(knowledge, picture_id, image))


def test_effleurage_arrows_point_to_the_head_beside_the_spine(
    knowledge: KnowledgeBase,
) -> None:
    picture = knowledge.pictures["effleurage"]
    image = image_of(render(picture))
    spine_x = to_pixels(picture, (0.0, 50.0))[0]
    scale = to_pixels(picture, (1.0, 50.0))[0] - spine_x  # pixels per body unit
    beside = [head for head in arrowheads(picture)
              if abs(head.tip[0] - spine_x) < 12 * scale
              and to_pixels(picture, (0.0, 40.0))[1] < head.tip[1]]
    assert len(beside) >= 2  # one each side of the spine
    for head in beside:
        assert head.direction[1] < -0.9, head  # up the picture: towards the head
        # Drawn where the geometry says: the arrowhead's own colour just behind its tip.
        x = head.tip[0] - head.direction[0] * 6
        y = head.tip[1] - head.direction[1] * 6
        assert near(image.getpixel((round(x), round(y))), HANDS)


def test_every_technique_and_position_has_a_picture(knowledge: KnowledgeBase) -> None:
    for topic in knowledge.topics.values():
        if topic.kind in ("technique", "positioning"):
            assert topic.picture in knowledge.pictures, topic.id
    for session in knowledge.sessions.values():
        for variant in (None, *session.variants):
            for step in session.steps_in(variant):
                title = step.title.lower()
                if any(word in title for word in TECHNIQUE_WORDS) or "position" in title:
                    assert step.picture in knowledge.pictures, (session.id, variant, step.title)
    # Her position is on her side, with a pillow under the bump, not face down.
    [position] = [s for s in knowledge.sessions["full-back"].steps_in("pregnancy")
                  if "Position" in s.title]
    assert position.picture == "side-lying-pregnancy"


BAD_PICTURES = """\
pictures:
  - id: wrong
    view: back
    title: Wrong
    marks:
      - area: bum
        role: work
      - stroke: [[0, 50], [60, 50]]
      - area: spine
        role: work
      - circles: [[1, 40]]
      - prop: pillow
        at: under-hips
  - id: lying
    view: lying-face-down
    title: Lying
    marks:
      - prop: pillow
        at: under-the-moon
      - giver: [10, 10]
topics:
  - id: kneading
    kind: technique
    title: Kneading
    picture: kneeding
    aliases: [petrissage]
    questions: [how do i knead]
    answer: Squeeze and roll the muscles.
    related: []
"""


def test_the_validator_names_each_wrong_mark_with_its_line(tmp_path: Path) -> None:
    directory = tmp_path / "knowledge"
    directory.mkdir()
    (directory / "kb.yaml").write_text(dedent(BAD_PICTURES), encoding="utf-8")
    knowledge, problems = check_knowledge(directory, require_contract=False)
    assert knowledge is None
    said = [str(problem) for problem in problems]
    expected = [
        "knowledge/kb.yaml:6: picture wrong.marks[0].area: unknown area 'bum'",
        "knowledge/kb.yaml:8: picture wrong.marks[1].stroke: point [0, 50] puts the hands on "
        "the spine",
        "knowledge/kb.yaml:8: picture wrong.marks[1].stroke: point [60, 50] is outside the body",
        "knowledge/kb.yaml:9: picture wrong.marks[2].area: the spine is never worked on",
        "knowledge/kb.yaml:11: picture wrong.marks[3].circles: point [1, 40] puts the hands on "
        "the spine",
        "knowledge/kb.yaml:12: picture wrong.marks[4].prop: prop belongs in a positioning view",
        "knowledge/kb.yaml:18: picture lying.marks[0].prop: unknown place 'under-the-moon'",
        "knowledge/kb.yaml:20: picture lying.marks[1].giver: unknown place '[10, 10]'",
        "knowledge/kb.yaml:25: topic kneading.picture: unknown picture 'kneeding'",
    ]
    for line in expected:
        assert any(problem.startswith(line) for problem in said), (line, said)
    assert len(said) == len(expected), said


def test_pictures_are_drawn_once_and_again_when_they_change(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    files = PictureFiles(tmp_path / "pictures")
    picture = knowledge.pictures["friction"]
    first = files.path(picture)
    assert first.read_bytes() == render(picture)
    os.utime(first, (1, 1))
    assert files.path(picture) == first and first.stat().st_mtime == 1  # not drawn again
    changed = type(picture)(**{**picture.__dict__, "title": "Friction, changed"})
    assert files.path(changed) != first  # a changed picture is a new file
    assert sorted(p.suffix for p in (tmp_path / "pictures").iterdir()) == [".png", ".png"]


def chat_output(knowledge: KnowledgeBase, tmp_path: Path, typed: str) -> str:
    clock = ScaledClock(speed=1000)
    store = Store.open(tmp_path / "terminal.sqlite3")
    out = io.StringIO()
    conversation = Conversation(knowledge, Matcher(knowledge), store, clock)
    chat = TerminalChat(conversation=conversation, clock=clock, out=out,
                        pictures=PictureFiles(tmp_path / "data" / "pictures"))
    assert run_chat(chat, read_line=lines_reader(typed), interactive=False) == 0
    store.close()
    return out.getvalue()


def picture_paths(output: str) -> list[Path]:
    return [Path(line.split("Picture: ", 1)[1]) for line in output.splitlines()
            if line.startswith("🖼 Picture: ")]


def test_terminal_says_where_the_picture_is_and_can_do_without(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    output = chat_output(knowledge, tmp_path, "how do i do tapotement\n")
    [path] = picture_paths(output)
    assert path.is_file() and path.parent == tmp_path / "data" / "pictures"
    assert image_of(path.read_bytes()).width == WIDTH
    assert output.index("== Tapotement") < output.index("🖼 Picture:")

    # /settings turns pictures off (and on again) for this chat.
    output = chat_output(knowledge, tmp_path, "/settings\n2\nhow do i do tapotement\n")
    assert "Pictures are OFF" in output
    assert picture_paths(output) == []
    output = chat_output(knowledge, tmp_path, "/settings\n2\nhow do i do tapotement\n")
    assert "Pictures are ON" in output
    assert len(picture_paths(output)) == 1


def test_each_session_step_with_a_picture_shows_it_in_the_terminal(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    output = chat_output(knowledge, tmp_path, "/session quick-back\nno\nno\nnext\n" +
                         "next\n" * 12)
    shown = {path.name.split("-")[0] for path in picture_paths(output)}
    assert {"lying", "effleurage", "petrissage", "friction", "finishing"} <= shown


def test_pictures_command_writes_every_diagram(knowledge: KnowledgeBase, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "pictures", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
        env={**os.environ, "DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(f"{picture_id}.png" for picture_id in knowledge.pictures)
    assert done.stdout.splitlines() == [str(tmp_path / "out" / name) for name in
                                        [f"{pid}.png" for pid in knowledge.pictures]]


def test_pictures_command_names_a_directory_it_cannot_write(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "pictures", str(blocked / "out")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
        env={**os.environ, "DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"massage-bot: cannot write the pictures to {blocked / 'out'}: Not a directory"
    ]


async def test_the_bot_draws_in_a_child_process_only_what_is_missing(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    files = PictureFiles(tmp_path / "pictures")
    wanted = [knowledge.pictures["effleurage"], knowledge.pictures["side-lying"]]
    assert await files.draw_elsewhere(wanted) == 2
    for picture in wanted:
        assert files.file_of(picture).read_bytes() == render(picture)  # the same drawing
    assert await files.draw_elsewhere(wanted) == 0  # nothing missing: no child at all
