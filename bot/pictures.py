"""Drawing the knowledge base's diagrams (bot/diagrams.py) as PNG, and keeping them on disk.

Pillow is imported only inside `render`, so the text paths (answers, sessions, the matcher)
start and run without it; a picture is drawn the first time it is asked for and kept under
DATA_DIR/pictures, named by its content hash, so a changed picture gets a new file and an
unchanged one is never drawn again.

Drawing is at twice the size, then scaled down (anti-aliasing for lines, fills and text).
Colours are from the Okabe-Ito palette, which stays distinct for colour-blind people, and
nothing relies on colour alone: "never" areas are hatched as well as vermilion, light strokes
are dashed. Text is Pillow's own font (no download) at phone-readable sizes.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.diagrams import (
    AREAS,
    FRAMES,
    HEAD,
    PLACES,
    SPINE_BOTTOM,
    SPINE_HALF_WIDTH,
    SPINE_TOP,
    TORSO,
    TOWEL_TOP,
    Mark,
    Picture,
    Point,
    legend_entries,
    mirrored,
)

if TYPE_CHECKING:
    from bot.knowledge import KnowledgeBase

# Bump when the drawing code changes what a picture looks like: cached files are redrawn.
RENDER_VERSION = 2
WIDTH = 640
MAX_HEIGHT = 800
MIN_HEIGHT = 512
SCALE = 2  # drawn at this multiple, then scaled down: anti-aliasing
PALETTE_COLOURS = 96
PICTURES_DIR = "pictures"  # under DATA_DIR
# Drawing all of them takes a few seconds; far longer means something is wrong.
DRAW_TIMEOUT_SECONDS = 60.0

# Okabe-Ito.
ORANGE = (230, 159, 0)
SKY_BLUE = (86, 180, 233)
GREEN = (0, 158, 115)  # bluish green
YELLOW = (240, 228, 66)
BLUE = (0, 114, 178)
VERMILION = (213, 94, 0)
PURPLE = (204, 121, 167)  # reddish purple
# Neutral colours for the body and furniture, light enough that every mark stands out.
WHITE = (255, 255, 255)
INK = (34, 34, 34)
SKIN = (246, 224, 203)
SKIN_SHADE = (226, 198, 172)
SKIN_LINE = (122, 92, 72)
BONE = (205, 178, 152)
BONE_LINE = (150, 120, 96)
TOWEL = (221, 230, 238)
TOWEL_LINE = (160, 176, 190)
FURNITURE = (168, 168, 168)
FURNITURE_LINE = (110, 110, 110)
SHEET = (238, 241, 244)
PILLOW_LINE = (38, 98, 132)
ROLL_LINE = (128, 120, 20)
GIVER_LINE = (125, 60, 98)

HANDS = BLUE  # every mark of what the hands do
WORK_ALPHA = 150  # of 255: the body's landmarks show through a worked area

TITLE_SIZE = 30
LEGEND_SIZE = 26
LABEL_SIZE = 25
MARGIN = 20
LEGEND_ROW_GAP = 10
SWATCH_WIDTH = 56


def picture_key(picture: Picture) -> str:
    """The name of a picture's file: its id, what it looks like and how it is drawn."""
    return f"{picture.id}-{picture.digest()}-r{RENDER_VERSION}"


class DrawingFailed(Exception):
    """Drawing pictures in a child process failed; the message is one line."""


@dataclass(frozen=True)
class PictureFiles:
    """The rendered pictures under a directory (DATA_DIR/pictures), drawn when first asked."""

    directory: Path

    def file_of(self, picture: Picture) -> Path:
        """Where the picture's PNG is (or will be, once drawn)."""
        return self.directory / f"{picture_key(picture)}.png"

    def path(self, picture: Picture) -> Path:
        """The picture's PNG, drawn here and now if it is not on disk yet."""
        target = self.file_of(picture)
        if not target.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            data = render(picture)
            # Written whole or not at all: a crash never leaves half a PNG to be sent.
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        return target


    async def draw_elsewhere(self, pictures: Iterable[Picture]) -> int:
        """Draw those of `pictures` not on disk yet in a child process (`python -m
        bot.pictures`), so the long-running bot never loads Pillow or holds a canvas: its
        memory stays what it was. How many were drawn; DrawingFailed if it failed."""
        missing = [p for p in pictures if not self.file_of(p).exists()]
        if not missing:
            return 0
        payload = json.dumps([asdict(p) for p in missing]).encode()
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.pictures", str(self.directory),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _out, err = await asyncio.wait_for(child.communicate(payload), DRAW_TIMEOUT_SECONDS)
        except TimeoutError:
            child.kill()  # a start-up must not wait for ever on a stuck drawing
            await child.wait()
            raise DrawingFailed(f"drawing {len(missing)} picture(s) took over "
                                f"{DRAW_TIMEOUT_SECONDS:g} s") from None
        if child.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines() or ["no output"]
            raise DrawingFailed(f"drawing {len(missing)} picture(s) failed (exit "
                                f"{child.returncode}): {lines[-1]}")
        return len(missing)


def picture_from_data(data: dict[str, Any]) -> Picture:
    """A picture from its `asdict` form (what `draw_elsewhere` hands the child)."""
    marks = tuple(
        Mark(**{**mark, "points": tuple((float(x), float(y)) for x, y in mark["points"])})
        for mark in data["marks"]
    )
    return Picture(**{**data, "marks": marks})


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bot.pictures DIR`: draw the pictures given as JSON on stdin into DIR."""
    [directory] = list(sys.argv[1:] if argv is None else argv)
    files = PictureFiles(Path(directory))
    for data in json.load(sys.stdin):
        files.path(picture_from_data(data))
    return 0


def write_all(knowledge: KnowledgeBase, directory: Path) -> list[Path]:
    """Every picture of the knowledge base as `<id>.png` in `directory` (for an author)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for picture in knowledge.pictures.values():
        path = directory / f"{picture.id}.png"
        path.write_bytes(render(picture))
        written.append(path)
    return written


# --- layout ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where the drawing goes on the canvas, in final (1x) pixels."""

    view: str
    left: float
    top: float
    scale: float  # pixels per unit of the view's coordinates

    def px(self, point: Point) -> tuple[float, float]:
        """A view point in drawing (2x) pixels."""
        x0, y0, _x1, _y1 = FRAMES[self.view]
        return (
            (self.left + (point[0] - x0) * self.scale) * SCALE,
            (self.top + (point[1] - y0) * self.scale) * SCALE,
        )

    def length(self, units: float) -> float:
        """A length in view units, in drawing (2x) pixels."""
        return units * self.scale * SCALE


@dataclass(frozen=True)
class Arrowhead:
    tip: tuple[float, float]  # final (1x) pixels
    direction: tuple[float, float]  # a unit vector, y down


def arrowheads(picture: Picture) -> list[Arrowhead]:
    """The arrowheads of the picture's strokes, where `render` draws them (for tests)."""
    layout, _height = _layout(picture)
    heads: list[Arrowhead] = []
    for mark in _expanded(picture.marks):
        if mark.shape != "stroke":
            continue
        for tip, direction in _stroke_heads(_smooth([layout.px(p) for p in mark.points])):
            heads.append(Arrowhead((tip[0] / SCALE, tip[1] / SCALE), direction))
    return heads


def to_pixels(picture: Picture, point: Point) -> tuple[float, float]:
    """Where a point of the picture's view lands in the final image (for tests)."""
    layout, _height = _layout(picture)
    x, y = layout.px(point)
    return x / SCALE, y / SCALE


def _layout(picture: Picture) -> tuple[Layout, int]:
    """The drawing's place and the canvas height: title, drawing, legend within the limits."""
    font = _font(LEGEND_SIZE)
    text_width = WIDTH - 2 * MARGIN - SWATCH_WIDTH - 14
    legend = sum(
        len(_wrap(entry.legend, font, text_width)) * _line_height(LEGEND_SIZE) + LEGEND_ROW_GAP
        for entry in legend_entries(picture.marks)
    )
    title = _line_height(TITLE_SIZE) * len(_wrap(picture.title, _font(TITLE_SIZE),
                                                 WIDTH - 2 * MARGIN))
    x0, y0, x1, y1 = FRAMES[picture.view]
    room = MAX_HEIGHT - (MARGIN + title + 12 + 12 + legend + MARGIN)
    scale = min((WIDTH - 2 * MARGIN) / (x1 - x0), room / (y1 - y0))
    drawing = (y1 - y0) * scale
    height = max(MIN_HEIGHT, math.floor(MARGIN + title + 12 + drawing + 12 + legend + MARGIN))
    left = (WIDTH - (x1 - x0) * scale) / 2
    return Layout(picture.view, left, MARGIN + title + 12, scale), height


def _expanded(marks: Iterable[Mark]) -> list[Mark]:
    """Marks with `mirror` as two marks, one each side of the spine."""
    out: list[Mark] = []
    for mark in marks:
        out.append(mark)
        if mark.mirror:
            out.append(Mark(**{**mark.__dict__, "points": mirrored(mark.points),
                               "mirror": False, "legend": ""}))
    return out


# --- text --------------------------------------------------------------------------------------

_FONTS: dict[int, Any] = {}


def _font(size: int) -> Any:
    """Pillow's own scalable font at `size` final pixels (cached: loading costs a little)."""
    if size not in _FONTS:
        from PIL import ImageFont

        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


def _line_height(size: int) -> int:
    return round(size * 1.3)


def _wrap(text: str, font: Any, width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and font.getlength(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return [*lines, current] if current else lines


# --- geometry helpers --------------------------------------------------------------------------


def _smooth(points: Sequence[tuple[float, float]], steps: int = 12) -> list[tuple[float, float]]:
    """A Catmull-Rom curve through the points: hands move in curves, not corners."""
    if len(points) < 3:
        return list(points)
    padded = [points[0], *points, points[-1]]
    curve: list[tuple[float, float]] = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        for step in range(steps):
            t = step / steps
            t2, t3 = t * t, t * t * t
            curve.append(tuple(  # type: ignore[arg-type]
                0.5 * (2 * p1[k] + (-p0[k] + p2[k]) * t + (2 * p0[k] - 5 * p1[k] + 4 * p2[k]
                       - p3[k]) * t2 + (-p0[k] + 3 * p1[k] - 3 * p2[k] + p3[k]) * t3)
                for k in (0, 1)
            ))
    curve.append(points[-1])
    return curve


def _lengths(curve: Sequence[tuple[float, float]]) -> list[float]:
    total = [0.0]
    for a, b in itertools.pairwise(curve):
        total.append(total[-1] + math.dist(a, b))
    return total


def _at(curve: Sequence[tuple[float, float]], lengths: Sequence[float], distance: float
        ) -> tuple[tuple[float, float], tuple[float, float]]:
    """The point at `distance` along the curve and the unit direction there."""
    for index in range(1, len(curve)):
        if lengths[index] >= distance or index == len(curve) - 1:
            a, b = curve[index - 1], curve[index]
            span = lengths[index] - lengths[index - 1] or 1.0
            t = min(1.0, max(0.0, (distance - lengths[index - 1]) / span))
            norm = math.dist(a, b) or 1.0
            return ((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t),
                    ((b[0] - a[0]) / norm, (b[1] - a[1]) / norm))
    return curve[-1], (0.0, -1.0)


def _stroke_heads(curve: Sequence[tuple[float, float]]
                  ) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """An arrowhead at the end, and one halfway along a long stroke: the direction shows
    wherever the eye lands."""
    lengths = _lengths(curve)
    total = lengths[-1]
    spots = [total]
    if total > 260 * SCALE / 2:
        spots.insert(0, total * 0.5)
    return [_at(curve, lengths, spot) for spot in spots]


def _dashes(curve: Sequence[tuple[float, float]], dash: float, gap: float
            ) -> list[list[tuple[float, float]]]:
    lengths = _lengths(curve)
    pieces = []
    start = 0.0
    while start < lengths[-1]:
        end = min(start + dash, lengths[-1])
        piece = [_at(curve, lengths, start)[0]]
        piece += [p for p, d in zip(curve, lengths, strict=False) if start < d < end]
        piece.append(_at(curve, lengths, end)[0])
        pieces.append(piece)
        start = end + gap
    return pieces


# --- drawing -----------------------------------------------------------------------------------


def render(picture: Picture) -> bytes:
    """The picture as PNG bytes."""
    from PIL import Image, ImageDraw

    layout, height = _layout(picture)
    image = Image.new("RGB", (WIDTH * SCALE, height * SCALE), WHITE)
    draw = ImageDraw.Draw(image)
    _title(draw, picture.title)
    marks = _expanded(picture.marks)
    if picture.view == "back":
        _draw_back(image, draw, layout, marks)
    else:
        _draw_position(image, draw, layout, marks)
    _legend(image, draw, layout, picture)
    small = image.resize((WIDTH, height), Image.Resampling.LANCZOS)
    # A flat drawing needs few colours: a palette PNG is a third of the bytes to upload.
    small = small.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _title(draw: Any, title: str) -> None:
    font = _font(TITLE_SIZE * SCALE)
    y = MARGIN * SCALE
    for line in _wrap(title, _font(TITLE_SIZE), WIDTH - 2 * MARGIN):
        width = font.getlength(line)
        draw.text(((WIDTH * SCALE - width) / 2, y), line, font=font, fill=INK,
                  stroke_width=1, stroke_fill=INK)
        y += _line_height(TITLE_SIZE) * SCALE


def _capsule(draw: Any, a: tuple[float, float], b: tuple[float, float], width: float,
             fill: tuple[int, int, int], outline: tuple[int, int, int], line: float) -> None:
    """A limb: a thick line with round ends, outlined."""
    r = width / 2
    for radius, colour in ((r + line, outline), (r, fill)):
        draw.line([a, b], fill=colour, width=round(2 * radius))
        for x, y in (a, b):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)


def _polygon_px(layout: Layout, polygon: Sequence[Point]) -> list[tuple[float, float]]:
    return [layout.px(p) for p in polygon]


def _ellipse_box(layout: Layout, ellipse: tuple[float, float, float, float]
                 ) -> list[float]:
    cx, cy, rx, ry = ellipse
    (x0, y0), (x1, y1) = layout.px((cx - rx, cy - ry)), layout.px((cx + rx, cy + ry))
    return [x0, y0, x1, y1]


def _draw_back(image: Any, draw: Any, layout: Layout, marks: Sequence[Mark]) -> None:
    from PIL import Image, ImageChops, ImageDraw

    line = 2.0 * SCALE
    # Arms by the sides, under the torso's outline.
    for side in (1, -1):
        a, b = layout.px((side * 41.0, 33.0)), layout.px((side * 45.5, 76.0))
        _capsule(draw, a, b, layout.length(8.5), SKIN_SHADE, SKIN_LINE, line)
    torso = _polygon_px(layout, TORSO)
    draw.polygon(torso, fill=SKIN, outline=SKIN_LINE, width=round(line))
    draw.ellipse(_ellipse_box(layout, HEAD), fill=SKIN, outline=SKIN_LINE, width=round(line))
    # The body as a mask: worked areas stay on the skin.
    body = Image.new("L", image.size, 0)
    ImageDraw.Draw(body).polygon(torso, fill=255)
    ImageDraw.Draw(body).ellipse(_ellipse_box(layout, HEAD), fill=255)
    _landmarks(draw, layout)
    # One mask per role, so two areas that meet or overlap show as one even colour.
    for role in ("work", "never"):
        areas = [m.name for m in marks if m.shape == "area" and m.role == role]
        if not areas:
            continue
        mask = Image.new("L", image.size, 0)
        for name in areas:
            for polygon in AREAS[name].polygons:
                ImageDraw.Draw(mask).polygon(_polygon_px(layout, polygon), fill=255)
        mask = ImageChops.multiply(mask, body)
        if role == "work":
            image.paste(GREEN, mask=mask.point(lambda v: v * WORK_ALPHA // 255))
        else:
            image.paste(VERMILION, mask=mask.point(lambda v: v * 70 // 255))
            image.paste(VERMILION, mask=ImageChops.multiply(mask, _hatch(image.size)))
    # The spine over any fill: it is where the eye looks for "not here".
    _vertebrae(draw, layout)
    _towel(draw, layout)
    for mark in marks:
        if mark.shape == "stroke":
            _stroke(draw, [layout.px(p) for p in mark.points], mark.role == "light")
        elif mark.shape == "circles":
            for point in mark.points:
                _circle_mark(draw, layout.px(point), layout.length(3.6))
        elif mark.shape == "tremble":
            for point in mark.points:
                _tremble_mark(draw, layout.px(point), layout.length(4.0))
    _labels(draw, layout, marks)


def _hatch(size: tuple[int, int]) -> Any:
    from PIL import Image, ImageDraw

    hatch = Image.new("L", size, 0)
    hatch_draw = ImageDraw.Draw(hatch)
    step = 14 * SCALE
    for offset in range(-size[1], size[0], step):
        hatch_draw.line([(offset, size[1]), (offset + size[1], 0)], fill=255,
                        width=round(3.5 * SCALE))
    return hatch


def _landmarks(draw: Any, layout: Layout) -> None:
    """Shoulder blades and the lower edge of the ribs: where things are on a back."""
    line = round(1.6 * SCALE)
    for polygon in AREAS["shoulder-blades"].polygons:
        points = _polygon_px(layout, polygon)
        closed = _smooth([*points[-1:], *points, *points[:2]])
        draw.line(closed[12:-12], fill=BONE_LINE, width=line, joint="curve")
    for side in (1, -1):
        rib = _smooth([layout.px((side * x, y)) for x, y in ((3.0, 54.0), (15.0, 56.5),
                                                              (28.0, 61.0))])
        for piece in _dashes(rib, 7 * SCALE, 5 * SCALE):
            draw.line(piece, fill=BONE_LINE, width=line)


def _vertebrae(draw: Any, layout: Layout) -> None:
    y = SPINE_TOP + 1.2
    while y < TOWEL_TOP - 1:
        x0, y0 = layout.px((-SPINE_HALF_WIDTH + 0.4, y))
        x1, y1 = layout.px((SPINE_HALF_WIDTH - 0.4, y + 2.6))
        draw.rounded_rectangle([x0, y0, x1, y1], radius=(x1 - x0) / 3, fill=BONE,
                               outline=BONE_LINE, width=round(1.2 * SCALE))
        y += 3.6


def _towel(draw: Any, layout: Layout) -> None:
    x0, y0 = layout.px((-36.0, TOWEL_TOP))
    x1, y1 = layout.px((36.0, SPINE_BOTTOM))
    draw.rounded_rectangle([x0, y0, x1, y1], radius=6 * SCALE, fill=TOWEL, outline=TOWEL_LINE,
                           width=round(1.6 * SCALE))
    stripe = y0 + (y1 - y0) * 0.45
    draw.line([(x0 + 8 * SCALE, stripe), (x1 - 8 * SCALE, stripe)], fill=TOWEL_LINE,
              width=round(2 * SCALE))


def _arrowhead(draw: Any, tip: tuple[float, float], direction: tuple[float, float],
               size: float, colour: tuple[int, int, int]) -> None:
    dx, dy = direction
    back = (tip[0] - dx * size, tip[1] - dy * size)
    half = size * 0.6
    draw.polygon([tip, (back[0] - dy * half, back[1] + dx * half),
                  (back[0] + dy * half, back[1] - dx * half)], fill=colour)


def _stroke(draw: Any, points: Sequence[tuple[float, float]], light: bool) -> None:
    curve = _smooth(points)
    width = (4.0 if light else 6.0) * SCALE
    # A white edge keeps the path readable over a green or hatched area.
    pieces = _dashes(curve, 16 * SCALE, 10 * SCALE) if light else [curve]
    heads = _stroke_heads(curve)
    head_size = 20 * SCALE
    for piece in pieces:
        draw.line(piece, fill=WHITE, width=round(width + 4 * SCALE), joint="curve")
    for tip, direction in heads:
        _arrowhead(draw, (tip[0] + direction[0] * 2 * SCALE, tip[1] + direction[1] * 2 * SCALE),
                   direction, head_size + 5 * SCALE, WHITE)
    for piece in pieces:
        draw.line(piece, fill=HANDS, width=round(width), joint="curve")
    for tip, direction in heads:
        _arrowhead(draw, tip, direction, head_size, HANDS)


def _circle_mark(draw: Any, centre: tuple[float, float], radius: float) -> None:
    """A small circle with an arrow: a thumb's slow circles on one spot."""
    x, y = centre
    box = [x - radius, y - radius, x + radius, y + radius]
    width = round(3.6 * SCALE)
    draw.arc(box, 0, 300, fill=WHITE, width=width + round(3 * SCALE))
    draw.arc(box, 0, 300, fill=HANDS, width=width)
    angle = math.radians(300)
    tip = (x + radius * math.cos(angle), y + radius * math.sin(angle))
    direction = (-math.sin(angle), math.cos(angle))  # clockwise on screen
    _arrowhead(draw, (tip[0] + direction[0] * radius * 0.45, tip[1] + direction[1] * radius
                      * 0.45), direction, radius * 0.9, HANDS)


def _tremble_mark(draw: Any, centre: tuple[float, float], size: float) -> None:
    """A flat palm with shaking lines either side: trembling on the spot, not sliding."""
    x, y = centre
    palm = [x - size * 0.55, y - size * 0.75, x + size * 0.55, y + size * 0.75]
    draw.ellipse(palm, fill=WHITE, outline=HANDS, width=round(3.2 * SCALE))
    for side in (-1, 1):
        for ring in (1.0, 1.45):
            r = size * ring
            box = [x - r, y - r, x + r, y + r]
            start = -35 if side == 1 else 145
            draw.arc(box, start, start + 70, fill=HANDS, width=round(3.2 * SCALE))


def _labels(draw: Any, layout: Layout, marks: Sequence[Mark]) -> None:
    font = _font(LABEL_SIZE * SCALE)
    for mark in marks:
        if mark.shape != "label" or not mark.points:
            continue
        x, y = layout.px(mark.points[0])
        width = font.getlength(mark.text)
        x = min(max(x - width / 2, MARGIN * SCALE / 2), WIDTH * SCALE - width - MARGIN * SCALE / 2)
        draw.text((x, y - LABEL_SIZE * SCALE / 2), mark.text, font=font, fill=INK,
                  stroke_width=round(3 * SCALE), stroke_fill=WHITE)


# --- the positioning views ---------------------------------------------------------------------

Limb = tuple[Point, Point, float]  # from, to, width, in view units


@dataclass(frozen=True)
class Figure:
    """A person drawn from limbs: `body` as one silhouette, then `front` (arms in front of
    it) outlined on top, then the head."""

    body: tuple[Limb, ...]
    head: tuple[float, float, float]  # centre x, centre y, radius
    front: tuple[Limb, ...] = ()
    far: tuple[Limb, ...] = ()  # behind the body, a shade darker (the lower leg)
    hands: tuple[Point, ...] = ()  # a giver's hands on the back


FIGURES: dict[str, Figure] = {
    "lying-face-down": Figure(
        body=(
            ((16.5, 42.5), (22.0, 42.0), 5.0),  # neck
            ((22.0, 41.5), (55.0, 42.5), 10.5),  # torso
            ((55.0, 43.0), (71.0, 44.0), 8.5),  # thigh
            ((71.0, 44.0), (85.5, 44.5), 6.0),  # shin
            ((85.5, 44.5), (91.0, 48.5), 3.5),  # foot
        ),
        head=(12.0, 42.0, 5.2),
        front=(((25.0, 44.0), (47.0, 45.5), 4.5),),  # the arm by the side
    ),
    "side-lying": Figure(
        body=(
            ((19.0, 31.0), (24.0, 32.0), 6.0),  # neck
            ((25.0, 33.5), (49.0, 36.0), 15.0),  # torso
            ((51.0, 35.5), (69.0, 24.0), 10.0),  # upper thigh, knee bent forward
            ((69.0, 24.0), (85.0, 33.0), 7.0),  # upper shin
            ((85.0, 33.0), (90.0, 30.5), 4.0),  # foot
        ),
        head=(13.0, 30.0, 6.5),
        front=(((27.0, 28.5), (33.0, 21.0), 5.0), ((33.0, 21.0), (44.0, 19.5), 4.5)),
        far=(((52.0, 39.0), (68.0, 32.5), 9.5), ((68.0, 32.5), (84.0, 40.0), 6.5)),
    ),
    "sitting": Figure(
        body=(
            ((46.0, 58.0), (63.0, 60.0), 9.0),  # thigh
            ((63.0, 60.0), (64.0, 85.0), 6.0),  # shin
            ((64.0, 85.0), (70.0, 86.5), 3.5),  # foot
            ((46.0, 57.0), (63.0, 39.0), 12.0),  # torso, leaning forward
            ((63.0, 39.0), (67.0, 38.0), 5.0),  # neck
        ),
        head=(71.5, 38.0, 5.2),
        front=(((63.0, 40.5), (69.0, 48.0), 4.5), ((69.0, 48.0), (82.0, 44.5), 4.0)),
    ),
}
# The person giving the massage, by (view, place).
GIVERS: dict[tuple[str, str], Figure] = {
    ("lying-face-down", "beside"): Figure(
        body=(
            ((48.0, 50.0), (47.5, 87.0), 5.5), ((54.0, 50.0), (54.5, 87.0), 5.5),  # legs
            ((51.0, 17.0), (51.0, 49.0), 11.5),  # torso
        ),
        head=(51.0, 9.0, 4.8),
        front=(
            ((46.5, 19.5), (43.0, 29.0), 4.0), ((43.0, 29.0), (42.0, 36.0), 3.6),
            ((55.5, 19.5), (58.5, 29.0), 4.0), ((58.5, 29.0), (58.0, 36.0), 3.6),
        ),
        hands=((42.0, 36.5), (58.0, 36.5)),
    ),
    ("sitting", "behind"): Figure(
        body=(
            ((26.0, 50.0), (25.0, 87.0), 5.5), ((31.0, 50.0), (32.0, 87.0), 5.5),
            ((28.5, 18.0), (28.5, 50.0), 11.5),
        ),
        head=(28.5, 10.0, 4.8),
        front=(
            ((30.0, 21.0), (39.0, 33.0), 4.0), ((39.0, 33.0), (48.0, 45.0), 3.6),
            ((31.0, 20.0), (43.0, 27.0), 4.0), ((43.0, 27.0), (54.0, 39.0), 3.6),
        ),
        hands=((48.5, 45.5), (54.5, 39.5)),
    ),
    ("side-lying", "behind"): Figure(  # seen from above: shoulders, head, arms to the back
        body=(((38.0, 64.5), (58.0, 64.5), 8.0),),
        head=(48.0, 64.0, 4.6),
        front=(((38.5, 63.0), (40.0, 45.0), 3.8), ((57.5, 63.0), (55.5, 45.5), 3.8)),
        hands=((40.0, 43.0), (55.5, 43.5)),
    ),
}
# Props drawn over the person (a towel on the legs, a pillow hugged in front).
OVER_PLACES = frozenset({"over-legs", "in-front"})
# A pillow under the bump means there is a bump: part of the body's silhouette, over it.
BUMP: Limb = ((47.0, 29.0), (52.0, 30.0), 12.0)


def _place_box(layout: Layout, view: str, place: str) -> list[float]:
    cx, cy, w, h = PLACES[view][place]
    (x0, y0), (x1, y1) = layout.px((cx - w / 2, cy - h / 2)), layout.px((cx + w / 2, cy + h / 2))
    return [x0, y0, x1, y1]


def _prop(draw: Any, layout: Layout, view: str, mark: Mark) -> None:
    box = _place_box(layout, view, mark.place)
    line = round(2 * SCALE)
    if mark.name == "pillow":
        radius = min(box[2] - box[0], box[3] - box[1]) * 0.45
        draw.rounded_rectangle(box, radius=radius, fill=SKY_BLUE, outline=PILLOW_LINE,
                               width=line)
    elif mark.name == "rolled-towel":
        draw.ellipse(box, fill=YELLOW, outline=ROLL_LINE, width=line)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        r = (box[2] - box[0]) * 0.22
        draw.arc([cx - r, cy - r, cx + r, cy + r], 0, 270, fill=ROLL_LINE, width=line)
    else:  # a towel laid over: as thick as what it covers, round at the ends
        middle = (box[1] + box[3]) / 2
        _capsule(draw, (box[0], middle), (box[2], middle), box[3] - box[1], YELLOW, ROLL_LINE,
                 line)


def _figure(draw: Any, layout: Layout, figure: Figure, fill: tuple[int, int, int],
            outline: tuple[int, int, int]) -> None:
    line = 2.0 * SCALE
    for a, b, width in figure.far:
        _capsule(draw, layout.px(a), layout.px(b), layout.length(width), SKIN_SHADE, outline,
                 line)
    # Outlines first, then fills: the limbs join into one body without seams.
    for a, b, width in figure.body:
        _capsule(draw, layout.px(a), layout.px(b), layout.length(width) + 2 * line, outline,
                 outline, 0)
    for a, b, width in figure.body:
        _capsule(draw, layout.px(a), layout.px(b), layout.length(width), fill, fill, 0)
    cx, cy, r = figure.head
    draw.ellipse(_ellipse_box(layout, (cx, cy, r, r)), fill=fill, outline=outline,
                 width=round(line))


def _front(draw: Any, layout: Layout, figure: Figure, fill: tuple[int, int, int],
           outline: tuple[int, int, int]) -> None:
    """The arms in front of a figure, each outlined, and the hands."""
    line = 2.0 * SCALE
    for a, b, width in figure.front:
        _capsule(draw, layout.px(a), layout.px(b), layout.length(width) + 2 * line, outline,
                 outline, 0)
    for a, b, width in figure.front:
        _capsule(draw, layout.px(a), layout.px(b), layout.length(width), fill, fill, 0)
    for hand in figure.hands:
        x, y = layout.px(hand)
        r = layout.length(2.3)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=outline, width=round(line))


def _furniture(draw: Any, layout: Layout, view: str) -> None:
    line = round(2 * SCALE)
    floor = layout.px((0.0, 88.0))[1]

    def leg(x: float, top: float) -> None:
        x0, y0 = layout.px((x - 1.3, top))
        x1, _ = layout.px((x + 1.3, top))
        draw.rectangle([x0, y0, x1, floor], fill=FURNITURE, outline=FURNITURE_LINE, width=line)

    def top(x0: float, y0: float, x1: float, y1: float) -> None:
        draw.rounded_rectangle([*layout.px((x0, y0)), *layout.px((x1, y1))], radius=3 * SCALE,
                               fill=FURNITURE, outline=FURNITURE_LINE, width=line)

    if view in ("lying-face-down", "sitting"):
        draw.line([layout.px((0.0, 88.0)), layout.px((100.0, 88.0))], fill=FURNITURE_LINE,
                  width=line)
    if view == "lying-face-down":
        leg(9.0, 54.0)
        leg(91.0, 54.0)
        top(3.0, 52.0, 97.0, 55.5)
    elif view == "sitting":
        leg(66.0, 52.0)  # the table
        leg(94.0, 52.0)
        top(60.0, 49.5, 98.0, 52.5)
        leg(39.0, 64.0)  # a stool: nothing between the back and the hands
        leg(53.0, 64.0)
        top(36.0, 62.5, 56.0, 65.5)
    else:  # a bed seen from above
        draw.rounded_rectangle([*layout.px((2.0, 3.0)), *layout.px((98.0, 56.0))],
                               radius=8 * SCALE, fill=SHEET, outline=FURNITURE_LINE, width=line)


def _draw_position(image: Any, draw: Any, layout: Layout, marks: Sequence[Mark]) -> None:
    view = layout.view
    giver_mark = next((m for m in marks if m.shape == "giver"), None)
    giver = GIVERS.get((view, giver_mark.name)) if giver_mark else None
    from_above = view == "side-lying"
    if giver is not None and not from_above:
        _figure(draw, layout, giver, PURPLE, GIVER_LINE)  # behind the table, further away
    _furniture(draw, layout, view)
    person = FIGURES[view]
    props = [m for m in marks if m.shape == "prop"]
    if person.far:
        for a, b, width in person.far:
            _capsule(draw, layout.px(a), layout.px(b), layout.length(width), SKIN_SHADE,
                     SKIN_LINE, 2.0 * SCALE)
    for mark in props:
        if mark.place not in OVER_PLACES:
            _prop(draw, layout, view, mark)
    bump = (BUMP,) if any(m.place == "under-bump" for m in props) else ()
    _figure(draw, layout, Figure(body=person.body + bump, head=person.head), SKIN, SKIN_LINE)
    for mark in props:
        if mark.place in OVER_PLACES:
            _prop(draw, layout, view, mark)
    _front(draw, layout, person, SKIN, SKIN_LINE)
    if giver is not None:
        if from_above:
            _figure(draw, layout, giver, PURPLE, GIVER_LINE)
        _front(draw, layout, giver, PURPLE, GIVER_LINE)
    _labels(draw, layout, marks)


# --- the legend --------------------------------------------------------------------------------


def _legend(image: Any, draw: Any, layout: Layout, picture: Picture) -> None:
    entries = legend_entries(picture.marks)
    font = _font(LEGEND_SIZE * SCALE)
    measure = _font(LEGEND_SIZE)
    text_width = WIDTH - 2 * MARGIN - SWATCH_WIDTH - 14
    rows = [(entry, _wrap(entry.legend, measure, text_width)) for entry in entries]
    _x0, y0, _x1, y1 = FRAMES[picture.view]
    y = (layout.top + (y1 - y0) * layout.scale + 12) * SCALE  # just under the drawing
    for entry, lines in rows:
        middle = y + _line_height(LEGEND_SIZE) * SCALE / 2
        _swatch(image, draw, entry, MARGIN * SCALE, middle)
        for line in lines:
            draw.text(((MARGIN + SWATCH_WIDTH + 14) * SCALE, y), line, font=font, fill=INK)
            y += _line_height(LEGEND_SIZE) * SCALE
        y += LEGEND_ROW_GAP * SCALE


def _swatch(image: Any, draw: Any, mark: Mark, left: float, middle: float) -> None:
    from PIL import Image

    width, half = SWATCH_WIDTH * SCALE, 13 * SCALE
    box = [left, middle - half, left + width, middle + half]
    if mark.shape == "stroke":
        points = [(left + 4 * SCALE, middle), (left + width - 18 * SCALE, middle)]
        if mark.role == "light":
            for piece in _dashes(points, 12 * SCALE, 7 * SCALE):
                draw.line(piece, fill=HANDS, width=round(4 * SCALE))
        else:
            draw.line(points, fill=HANDS, width=round(6 * SCALE))
        _arrowhead(draw, (left + width, middle), (1.0, 0.0), 20 * SCALE, HANDS)
    elif mark.shape == "area" and mark.role == "work":
        fill = tuple(round(255 + (c - 255) * WORK_ALPHA / 255) for c in GREEN)
        draw.rounded_rectangle(box, radius=5 * SCALE, fill=fill, outline=GREEN,
                               width=round(2 * SCALE))
    elif mark.shape == "area":
        size = (round(box[2] - box[0]), round(box[3] - box[1]))
        patch = Image.new("RGB", size, tuple(round(255 + (c - 255) * 70 / 255)
                                             for c in VERMILION))
        patch.paste(VERMILION, mask=_hatch(size))
        image.paste(patch, (round(box[0]), round(box[1])))
        draw.rounded_rectangle(box, radius=2 * SCALE, outline=VERMILION,
                               width=round(2 * SCALE))
    elif mark.shape == "circles":
        _circle_mark(draw, (left + width / 2, middle), half * 0.85)
    elif mark.shape == "tremble":
        _tremble_mark(draw, (left + width / 2, middle), half * 0.8)
    elif mark.shape == "prop":
        inner = [left + 6 * SCALE, middle - half * 0.7, left + width - 6 * SCALE,
                 middle + half * 0.7]
        if mark.name == "pillow":
            draw.rounded_rectangle(inner, radius=half * 0.6, fill=SKY_BLUE, outline=PILLOW_LINE,
                                   width=round(2 * SCALE))
        elif mark.name == "rolled-towel":
            r = half * 0.8
            cx = left + width / 2
            draw.ellipse([cx - r, middle - r, cx + r, middle + r], fill=YELLOW,
                         outline=ROLL_LINE, width=round(2 * SCALE))
        else:
            draw.rounded_rectangle(inner, radius=half * 0.3, fill=YELLOW, outline=ROLL_LINE,
                                   width=round(2 * SCALE))
    elif mark.shape == "giver":
        cx = left + width / 2
        r = half * 0.45
        draw.ellipse([cx - r, middle - half, cx + r, middle - half + 2 * r], fill=PURPLE,
                     outline=GIVER_LINE, width=round(2 * SCALE))
        draw.rounded_rectangle([cx - half * 0.7, middle - half + 2 * r + SCALE, cx + half * 0.7,
                                middle + half], radius=half * 0.4, fill=PURPLE,
                               outline=GIVER_LINE, width=round(2 * SCALE))


if __name__ == "__main__":
    sys.exit(main())
