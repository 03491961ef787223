"""The shapes world: scenes of 1-4 flat-coloured shapes on a black background.

A scene is a list of ``Shape`` in resolution-free coordinates (fractions of the image
side), sampled from a numpy Generator, so one scene renders identically-laid-out at any
resolution. Shapes never touch (their bounding boxes keep a gap) and rendering is not
anti-aliased, so the scorer can read every shape back exactly from the pixels.
"""
from dataclasses import dataclass, replace

import math

import numpy as np
from PIL import Image, ImageDraw

# Saturated colours whose chromaticity (rgb / max channel) is at least 1 apart from each
# other; the black background only changes brightness, so blur towards it keeps the hue.
PALETTE = {
    'red': (255, 0, 0),
    'green': (0, 255, 0),
    'blue': (0, 0, 255),
    'yellow': (255, 255, 0),
    'magenta': (255, 0, 255),
    'cyan': (0, 255, 255),
}
COLOURS = tuple(PALETTE)
BACKGROUND = (0, 0, 0)
KINDS = ('circle', 'square', 'triangle', 'diamond')
SIZES = {'small': 0.09, 'large': 0.15}  # half the bounding-box side, as an image fraction
BORDER = 0.03  # space kept between any shape and the image edge
GAP = 0.05  # space kept between the bounding boxes of two shapes
MAX_SHAPES = 4

# GenEval's relative-position rule: a box offset shrunk by 10% of the two boxes' sizes,
# normalised; a direction holds when its component exceeds 0.5. Scenes built to satisfy
# a relation use the stricter CLEAR so that a slightly-off parse still agrees.
POSITION_THRESHOLD = 0.1
RELATIONS = ('left of', 'right of', 'above', 'below')
OPPOSITE = {'left of': 'right of', 'right of': 'left of', 'above': 'below', 'below': 'above'}
CLEAR = 0.7


@dataclass(frozen=True)
class Shape:
    """One shape: kind, colour, size name and centre (cx, cy) in [0, 1] image fractions."""
    kind: str
    colour: str
    size: str
    cx: float
    cy: float

    @property
    def extent(self):
        """Half the bounding-box side, as an image fraction."""
        return SIZES[self.size]

    @property
    def bbox(self):
        """(x0, y0, x1, y1) in image fractions."""
        e = self.extent
        return (self.cx - e, self.cy - e, self.cx + e, self.cy + e)

    def radius(self, resolution):
        """Half the bounding-box side in pixels at ``resolution``."""
        return self.extent * resolution


def relative_position(box_a, box_b, strictness=0.5):
    """GenEval's relations of box A to box B (xyxy, y down): a subset of RELATIONS."""
    revised, offset = [], []
    for lo, hi in ((0, 2), (1, 3)):
        delta = (box_a[lo] + box_a[hi] - box_b[lo] - box_b[hi]) / 2
        dims = abs(box_a[hi] - box_a[lo]) + abs(box_b[hi] - box_b[lo])
        revised.append(math.copysign(max(abs(delta) - POSITION_THRESHOLD * dims, 0.0), delta))
        offset.append(delta)
    if all(abs(r) < 1e-3 for r in revised):
        return set()
    norm = math.hypot(*offset)
    dx, dy = revised[0] / norm, revised[1] / norm
    found = {'left of': dx < -strictness, 'right of': dx > strictness,
             'above': dy < -strictness, 'below': dy > strictness}
    return {rel for rel, holds in found.items() if holds}


def _fits(cx, cy, extent, placed):
    """True when a shape at (cx, cy) keeps GAP from every placed shape."""
    return all(max(abs(cx - p.cx), abs(cy - p.cy)) >= extent + p.extent + GAP for p in placed)


def _place(rng, shapes, tries=200):
    """Give each shape a random centre inside the border so that none overlap; None if
    it got stuck."""
    placed = []
    for shape in shapes:
        lo, hi = BORDER + shape.extent, 1 - BORDER - shape.extent
        centres = rng.uniform(lo, hi, size=(tries, 2)).tolist()
        centre = next(((x, y) for x, y in centres if _fits(x, y, shape.extent, placed)), None)
        if centre is None:
            return None
        placed.append(replace(shape, cx=centre[0], cy=centre[1]))
    return placed


def _random_shape(rng, kinds=KINDS, colour=None):
    kind, colour_i, size_i = rng.integers([len(kinds), len(COLOURS), len(SIZES)])
    return Shape(kind=kinds[kind], colour=colour or COLOURS[colour_i],
                 size=list(SIZES)[size_i], cx=0.5, cy=0.5)


def sample_scene(rng, min_shapes=1, max_shapes=MAX_SHAPES):
    """A random scene of ``min_shapes``..``max_shapes`` non-overlapping shapes."""
    if not 1 <= min_shapes <= max_shapes <= MAX_SHAPES:
        raise ValueError(f'need 1 <= min_shapes <= max_shapes <= {MAX_SHAPES}')
    count = int(rng.integers(min_shapes, max_shapes + 1))
    while True:
        scene = _place(rng, [_random_shape(rng) for _ in range(count)])
        if scene is not None:
            return scene


def scene_from_prompt(prompt_spec, rng, max_distractors=0):
    """A random scene that satisfies a GenEval-style prompt spec (see text.py).

    Included objects get their colour if one is asked for, else a random one; position
    constraints hold at the CLEAR strictness. Up to ``max_distractors`` extra shapes
    (never of a kind the prompt names, at most MAX_SHAPES in all) are added.
    """
    include = prompt_spec['include']
    groups = [[_random_shape(rng, kinds=[req['class']], colour=req.get('color'))
               for _ in range(req['count'])] for req in include]
    named = {req['class'] for req in include + prompt_spec.get('exclude', [])}
    others = [k for k in KINDS if k not in named]
    free = MAX_SHAPES - sum(map(len, groups))
    n_extra = int(rng.integers(0, min(max_distractors, free) + 1)) if others else 0
    extras = [_random_shape(rng, kinds=others) for _ in range(n_extra)]
    while True:
        placed = _place(rng, [s for g in groups for s in g] + extras)
        if placed is not None and _positions_hold(include, placed):
            return placed


def _positions_hold(include, placed):
    """Whether every 'position' constraint of ``include`` holds clearly on ``placed``."""
    starts = np.cumsum([0] + [req['count'] for req in include])
    group = [placed[starts[i]:starts[i + 1]] for i in range(len(include))]
    for i, req in enumerate(include):
        if 'position' in req:
            rel, target = req['position']
            if not all(rel in relative_position(a.bbox, b.bbox, CLEAR)
                       for a in group[i] for b in group[target]):
                return False
    return True


def _outline(shape, resolution):
    """Pixel polygon of a non-circle shape; apexes point up so triangle != diamond."""
    x, y, r = shape.cx * resolution, shape.cy * resolution, shape.radius(resolution)
    return {
        'square': [(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)],
        'triangle': [(x, y - r), (x + r, y + r), (x - r, y + r)],
        'diamond': [(x, y - r), (x + r, y), (x, y + r), (x - r, y)],
    }[shape.kind]


def render(scene, resolution=64):
    """The scene as an RGB PIL image: flat palette colours, no anti-aliasing."""
    image = Image.new('RGB', (resolution, resolution), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape in scene:
        fill = PALETTE[shape.colour]
        if shape.kind == 'circle':
            x, y, r = shape.cx * resolution, shape.cy * resolution, shape.radius(resolution)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        else:
            draw.polygon(_outline(shape, resolution), fill=fill)
    return image


class ShapesWorld:
    """Indexed access to an endless deterministic stream of scenes: scene ``i`` depends
    only on (seed, i), so any index range is a reproducible split."""

    def __init__(self, seed=0, resolution=64, min_shapes=1, max_shapes=MAX_SHAPES):
        self.seed = seed
        self.resolution = resolution
        self.min_shapes = min_shapes
        self.max_shapes = max_shapes

    def scene(self, i):
        return sample_scene(np.random.default_rng([self.seed, i]),
                            self.min_shapes, self.max_shapes)

    def image(self, i):
        return render(self.scene(i), self.resolution)

    def caption(self, i):
        """Caption of scene ``i`` with a template picked by its own (seed, i) stream."""
        from .text import caption
        return caption(self.scene(i), np.random.default_rng([self.seed, i, 1]))

    def vqa(self, i):
        from .text import vqa_pairs
        return vqa_pairs(self.scene(i))
