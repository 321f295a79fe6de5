"""Diagrams as data: what a picture in the knowledge base says, and the body it is drawn on.

A picture (`pictures:` in a knowledge file, see bot/knowledge.py) is a view and a list of
marks in that view's own coordinates. Nothing here draws (bot/pictures.py does, with Pillow,
imported only when a picture is rendered), so loading and checking the knowledge base stays
as cheap as before.

Views:

- `back`: a back seen from above, the person lying face down. x runs from -50 (the left of
  the picture) to 50, the spine at 0; y from 0 (top of the head) to 100 (the hips, under a
  towel). Named areas (`AREAS`) are the places a person is told about: the tops of the
  shoulders, the muscles beside the spine, the kidney area below the ribs, ...
- `lying-face-down`, `sitting`: seen from the side, x 0 to 100 left to right, y 0 to 90 top
  to bottom, the floor at 88; `side-lying`: a bed seen from above, y 0 to 70. A fixed
  figure lies or sits in each; marks put pillows and towels at its named places (`PLACES`)
  and show where the person giving the massage stands (`GIVER_PLACES`).

Marks (one shape key each): `area` (a named area, `role` work or never), `stroke` (the
hands' path, drawn with arrows; `style` firm or light), `circles` (small circles on the
spot: friction), `tremble` (a still, trembling hand: vibration), `label` (`text` at a point),
`prop` (pillow, rolled-towel or towel at a place), `giver` (a place). `mirror: true` draws a
back mark on the other side too. `legend` is the mark's line in the key under the picture.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass

Point = tuple[float, float]

VIEWS = ("back", "lying-face-down", "side-lying", "sitting")
# The drawing's extent per view: (x min, y min, x max, y max).
FRAMES: dict[str, tuple[float, float, float, float]] = {
    "back": (-50.0, 0.0, 50.0, 100.0),
    "lying-face-down": (0.0, 0.0, 100.0, 90.0),
    "side-lying": (0.0, 0.0, 100.0, 70.0),
    "sitting": (0.0, 0.0, 100.0, 90.0),
}
SHAPES = ("area", "stroke", "circles", "tremble", "label", "prop", "giver")
AREA_ROLES = ("work", "never")
STROKE_STYLES = ("firm", "light")
PROPS = ("pillow", "rolled-towel", "towel")
# A legend line is read on a phone at a glance, beside a swatch.
MAX_LEGEND_CHARS = 56
MAX_LEGEND_LINES = 4
MAX_LABEL_CHARS = 24
MAX_TITLE_CHARS = 48


@dataclass(frozen=True)
class Mark:
    shape: str  # one of SHAPES
    points: tuple[Point, ...] = ()  # stroke, circles, tremble: the points; label: one point
    name: str = ""  # area: the area; prop: the prop; giver: the place
    place: str = ""  # prop: where it goes
    role: str = ""  # area: work or never; stroke: firm or light
    text: str = ""  # label
    legend: str = ""
    mirror: bool = False


@dataclass(frozen=True)
class Picture:
    id: str
    view: str
    title: str
    marks: tuple[Mark, ...]
    source: str = ""  # "file:line"

    def digest(self) -> str:
        """What the picture looks like, as a short hash (its source line aside)."""
        return _digest(self)


@functools.lru_cache(maxsize=1024)  # asked for on every photo sent: worked out once
def _digest(picture: Picture) -> str:
    data = asdict(picture)
    data.pop("source")
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def legend_entries(marks: tuple[Mark, ...] | list[Mark]) -> list[Mark]:
    """The marks that make the key under a picture: one line per kind of mark and text."""
    seen: set[tuple[str, str, str, str]] = set()
    entries = []
    for mark in marks:
        key = (mark.shape, mark.role, mark.name if mark.shape == "prop" else "", mark.legend)
        if mark.legend and key not in seen:
            seen.add(key)
            entries.append(mark)
    return entries


def mirrored(points: tuple[Point, ...]) -> tuple[Point, ...]:
    return tuple((-x, y) for x, y in points)


def _both(half: tuple[Point, ...]) -> tuple[tuple[Point, ...], ...]:
    """A right-side polygon and its mirror image on the left."""
    return (half, mirrored(half))


def _ellipse(cx: float, cy: float, rx: float, ry: float, steps: int = 24) -> tuple[Point, ...]:
    return tuple(
        (cx + rx * math.cos(2 * math.pi * i / steps), cy + ry * math.sin(2 * math.pi * i / steps))
        for i in range(steps)
    )


# --- the back, seen from above -----------------------------------------------------------

# The right half of the torso's outline, neck to hips; the left is its mirror image.
_TORSO_RIGHT: tuple[Point, ...] = (
    (5.5, 15.0), (5.5, 21.0), (12.0, 23.5), (24.0, 25.0), (33.0, 26.5), (39.0, 29.5),
    (41.5, 34.0), (41.0, 40.0), (38.5, 46.0), (35.0, 54.0), (31.5, 62.0), (29.0, 70.0),
    (30.0, 77.0), (32.5, 85.0), (33.5, 92.0), (33.0, 100.0),
)  # fmt: skip
TORSO: tuple[Point, ...] = _TORSO_RIGHT + tuple(reversed(mirrored(_TORSO_RIGHT)))
HEAD = (0.0, 8.5, 7.5, 8.5)  # centre x, centre y, radius x, radius y
SPINE_HALF_WIDTH = 2.5
SPINE_TOP, SPINE_BOTTOM = 21.0, 100.0
KIDNEYS = ((10.0, 64.0, 6.5, 6.5), (-10.0, 64.0, 6.5, 6.5))  # ellipses, as HEAD
TOWEL_TOP = 92.0  # the towel over the hips starts here


@dataclass(frozen=True)
class Area:
    title: str  # how the knowledge base calls it, for messages
    polygons: tuple[tuple[Point, ...], ...]


AREAS: dict[str, Area] = {
    "head": Area("the head", (_ellipse(*HEAD),)),
    "neck": Area("the neck", (((-5.5, 15.0), (5.5, 15.0), (5.5, 23.0), (-5.5, 23.0)),)),
    "spine": Area("the spine", ((
        (-SPINE_HALF_WIDTH, SPINE_TOP), (SPINE_HALF_WIDTH, SPINE_TOP),
        (SPINE_HALF_WIDTH, SPINE_BOTTOM), (-SPINE_HALF_WIDTH, SPINE_BOTTOM),
    ),)),
    "kidneys": Area("the kidney area below the ribs", tuple(_ellipse(*k) for k in KIDNEYS)),
    "shoulder-tops": Area("the tops of the shoulders", _both((
        (5.5, 21.5), (12.0, 23.5), (24.0, 25.0), (33.0, 26.5), (39.0, 29.5), (40.5, 33.0),
        (33.0, 33.0), (22.0, 31.5), (11.0, 30.0), (5.5, 29.0),
    ))),
    "shoulder-blades": Area("the shoulder blades", _both((
        (8.0, 31.0), (26.0, 31.0), (29.5, 36.0), (22.0, 50.0), (15.0, 52.0), (9.0, 44.0),
    ))),
    "beside-spine": Area("the muscles beside the spine", _both((
        (4.0, 24.0), (11.0, 24.0), (11.0, 90.0), (4.0, 90.0),
    ))),
    "upper-back": Area("the upper back", _both((
        (4.0, 30.0), (37.0, 30.0), (38.5, 46.0), (35.0, 54.0), (4.0, 54.0),
    ))),
    "lower-back": Area("the lower back", _both((
        (4.0, 58.0), (31.0, 58.0), (29.0, 70.0), (30.0, 77.0), (32.5, 85.0), (33.0, 91.0),
        (4.0, 91.0),
    ))),
    "sides": Area("the sides", _both((
        (29.0, 34.0), (41.0, 34.0), (41.0, 40.0), (38.5, 46.0), (35.0, 54.0), (31.5, 62.0),
        (29.0, 70.0), (30.0, 77.0), (32.5, 85.0), (25.0, 85.0), (23.0, 70.0), (25.0, 55.0),
        (28.0, 45.0),
    ))),
}
# Never worked on with any technique: firm hands here can hurt.
NEVER_WORKED = frozenset({"head", "neck", "spine", "kidneys"})


def inside(point: Point, polygon: tuple[Point, ...]) -> bool:
    """Whether `point` is inside `polygon` (ray casting; the edge counts as inside)."""
    x, y = point
    result = False
    count = len(polygon)
    for index in range(count):
        (x1, y1), (x2, y2) = polygon[index], polygon[index - 1]
        if (y1 > y) != (y2 > y):
            crossing = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x == crossing:
                return True
            if x < crossing:
                result = not result
    return result


def in_ellipse(point: Point, ellipse: tuple[float, float, float, float]) -> bool:
    cx, cy, rx, ry = ellipse
    return ((point[0] - cx) / rx) ** 2 + ((point[1] - cy) / ry) ** 2 <= 1.0


def on_back(point: Point) -> bool:
    """Whether a point of the back view is on the body (the torso, neck or head)."""
    return inside(point, TORSO) or in_ellipse(point, HEAD)


def in_area(point: Point, name: str) -> bool:
    return any(inside(point, polygon) for polygon in AREAS[name].polygons)


def never_worked_at(point: Point) -> str:
    """The area hands must never work on that `point` falls in, or ""."""
    return next((name for name in sorted(NEVER_WORKED) if in_area(point, name)), "")


def in_frame(view: str, point: Point) -> bool:
    x0, y0, x1, y1 = FRAMES[view]
    return x0 <= point[0] <= x1 and y0 <= point[1] <= y1


# --- the positioning views ------------------------------------------------------------------

# Where a prop can go in each positioning view: centre, width and height, in the view's
# coordinates (the figure that lies or sits there is bot/pictures.py's to draw).
PLACES: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "lying-face-down": {
        "under-forehead": (14.0, 49.5, 13.0, 5.0),
        "under-hips": (55.0, 49.5, 15.0, 5.0),
        "under-ankles": (86.0, 49.0, 6.0, 6.0),
        "over-legs": (70.5, 43.8, 29.0, 8.0),
    },
    "side-lying": {
        "under-head": (12.0, 30.0, 16.0, 14.0),
        "in-front": (37.0, 20.0, 20.0, 10.0),
        "between-knees": (70.0, 28.5, 12.0, 10.0),
        "under-bump": (51.5, 23.5, 15.0, 9.0),
        "behind-back": (38.0, 44.0, 26.0, 8.0),
    },
    "sitting": {
        "on-table": (75.0, 46.0, 22.0, 7.0),
        "on-lap": (57.0, 58.0, 12.0, 7.0),
    },
}
# Where the person giving the massage can stand, kneel or sit in each view.
GIVER_PLACES: dict[str, tuple[str, ...]] = {
    "lying-face-down": ("beside",),
    "side-lying": ("behind",),
    "sitting": ("behind",),
}


def picture_problems(view: str, mark: Mark) -> list[str]:
    """What is wrong with `mark` in `view`, in words for the author: an unknown name, a
    point off the body, hands on the spine. The field names are the knowledge file's."""
    problems: list[str] = []
    if view == "back":
        if mark.shape in ("prop", "giver"):
            problems.append(f"{mark.shape} belongs in a positioning view, not the back")
        if mark.shape == "area" and mark.name not in AREAS:
            problems.append(f"unknown area {mark.name!r}; expected one of {', '.join(AREAS)}")
        elif mark.shape == "area" and mark.role == "work" and mark.name in NEVER_WORKED:
            problems.append(f"{AREAS[mark.name].title} is never worked on: make it role never")
        for point in mark.points:
            if not on_back(point):
                problems.append(f"point {_show(point)} is outside the body")
            elif mark.shape in ("stroke", "circles", "tremble") and never_worked_at(point):
                area = never_worked_at(point)
                # A light glide may pass over the kidney area; working on one spot may not.
                if area != "kidneys" or mark.shape != "stroke":
                    problems.append(f"point {_show(point)} puts the hands on "
                                    f"{AREAS[area].title}")
        return problems
    if mark.shape == "area":
        problems.append("areas belong in the back view")
    if mark.shape in ("stroke", "circles", "tremble"):
        problems.append(f"{mark.shape} belongs in the back view")
    if mark.shape == "prop" and mark.place not in PLACES[view]:
        problems.append(f"unknown place {mark.place!r} in view {view}; expected one of "
                        f"{', '.join(PLACES[view])}")
    if mark.shape == "giver" and mark.name not in GIVER_PLACES[view]:
        problems.append(f"unknown place {mark.name!r} for the giver in view {view}; expected "
                        f"one of {', '.join(GIVER_PLACES[view])}")
    if mark.mirror:
        problems.append("mirror only applies to the back view")
    for point in mark.points:
        if not in_frame(view, point):
            problems.append(f"point {_show(point)} is outside the picture")
    return problems


def _show(point: Point) -> str:
    return f"[{point[0]:g}, {point[1]:g}]"
