"""The shapes world: scenes of 1-4 flat-coloured shapes on a black background.

A scene is a list of ``Shape`` in resolution-free coordinates (fractions of the image
side), sampled from a numpy Generator, so one scene renders identically-laid-out at any
resolution. Shapes never touch (their bounding boxes keep a gap) and rendering is not
anti-aliased, so the scorer can read every shape back exactly from the pixels.

The textured variant (``ShapesWorld(texture=True)``) fills every shape and the background
with a ``Pattern``: a named family (plain, striped, checked, dotted, speckled) whose fine
parameters (period, angle, phase, jitter, noise seed) are random and never put in words.
Patterns only modulate brightness (shapes between LOW and 100% of the palette colour,
the background in dim grey), so hue and the foreground mask are the flat world's.
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

# Texture families (their names are the adjectives texts use) and the range of their
# period (speckled: noise grain) in pixels at REFERENCE_RESOLUTION; scenes store it as an
# image fraction, so a textured scene is resolution-free too.
PATTERNS = ('plain', 'striped', 'checked', 'dotted', 'speckled')
PERIOD_PX = {'striped': (3.0, 8.0), 'checked': (4.0, 8.0), 'dotted': (5.0, 9.0),
             'speckled': (1.0, 2.0)}
REFERENCE_RESOLUTION = 128
TEXTURED_RESOLUTION = 128  # default render size of the textured world: 16x16 8-px patches
LOW = 0.6  # darkest share of the palette colour a textured shape shows (max channel 153)
BACKGROUND_LEVELS = (0.1, 0.3)  # grey range of a textured background (max channel <= 77)
DOT_RADIUS = 0.2  # Gaussian radius of a dot, in periods
MAX_JITTER = 0.15  # largest random offset of a dot from its lattice point, in periods

# GenEval's relative-position rule: a box offset shrunk by 10% of the two boxes' sizes,
# normalised; a direction holds when its component exceeds 0.5. Scenes built to satisfy
# a relation use the stricter CLEAR so that a slightly-off parse still agrees.
POSITION_THRESHOLD = 0.1
RELATIONS = ('left of', 'right of', 'above', 'below')
OPPOSITE = {'left of': 'right of', 'right of': 'left of', 'above': 'below', 'below': 'above'}
CLEAR = 0.7


@dataclass(frozen=True)
class Pattern:
    """A texture: its ``family`` (named in texts) and fine parameters (never named):
    ``period`` (speckled: grain) as an image fraction, ``angle`` in radians, ``phase`` in
    periods along and across the angle, ``level`` (plain's constant value), ``jitter`` of
    dots in periods, ``seed`` of dot offsets and speckle values. Families ignore the
    parameters they do not use (which keep their defaults)."""
    family: str
    period: float = 0.0
    angle: float = 0.0
    phase: tuple = (0.0, 0.0)
    level: float = 1.0
    jitter: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Shape:
    """One shape: kind, colour, size name and centre (cx, cy) in [0, 1] image fractions;
    ``pattern`` is its texture in the textured world, None for a flat colour."""
    kind: str
    colour: str
    size: str
    cx: float
    cy: float
    pattern: Pattern = None

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


def _mask(shape, resolution):
    """Boolean pixel mask of one shape, rasterised by PIL without anti-aliasing."""
    image = Image.new('1', (resolution, resolution), 0)
    draw = ImageDraw.Draw(image)
    if shape.kind == 'circle':
        x, y, r = shape.cx * resolution, shape.cy * resolution, shape.radius(resolution)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=1)
    else:
        draw.polygon(_outline(shape, resolution), fill=1)
    return np.asarray(image, dtype=bool)


def region_map(scene, resolution):
    """Which element of the scene covers each pixel, as ``render`` paints them: [H, W] ints,
    -1 for the background and ``k`` for ``scene[k]``."""
    regions = np.full((resolution, resolution), -1, dtype=np.int64)
    for k, shape in enumerate(scene):
        regions[_mask(shape, resolution)] = k
    return regions


def sample_pattern(rng):
    """A random pattern: a uniform family, then the fine parameters that family uses."""
    family = PATTERNS[int(rng.integers(len(PATTERNS)))]
    if family == 'plain':
        return Pattern(family, level=float(rng.uniform()))
    period = float(rng.uniform(*PERIOD_PX[family])) / REFERENCE_RESOLUTION
    angle = float(rng.uniform(0, math.pi)) if family != 'speckled' else 0.0
    phase = tuple(float(p) for p in rng.uniform(0, 1, 2))
    jitter = float(rng.uniform(0, MAX_JITTER)) if family == 'dotted' else 0.0
    seed = int(rng.integers(2 ** 31)) if family in ('dotted', 'speckled') else 0
    return Pattern(family, period, angle, phase, jitter=jitter, seed=seed)


def _pixel_centres(resolution, where=None):
    """(y, x) of pixel centres as image fractions: the whole grid ([H,1] and [1,W]) or,
    given a boolean ``where`` [H,W], its pixels in row-major order ([n] and [n])."""
    u = (np.arange(resolution) + 0.5) / resolution
    if where is None:
        return u[:, None], u[None, :]
    ys, xs = np.nonzero(where)
    return u[ys], u[xs]


def _lattice(pattern, y, x):
    """Pixel centres in pattern coordinates: periods along and across the angle, phased."""
    cos, sin = math.cos(pattern.angle), math.sin(pattern.angle)
    along = (x * cos + y * sin) / pattern.period + pattern.phase[0]
    across = (y * cos - x * sin) / pattern.period + pattern.phase[1]
    return along, across


def _dots(pattern, y, x):
    """Dark Gaussian dots on a jittered square lattice; 1 between dots, 0 at a centre."""
    along, across = _lattice(pattern, y, x)
    reach = math.ceil(math.sqrt(2) / pattern.period + 2)  # cells a unit image spans
    offsets = np.random.default_rng(pattern.seed).uniform(
        -pattern.jitter, pattern.jitter, (2 * reach + 1, 2 * reach + 1, 2))
    cell_a, cell_b = np.floor(along).astype(int), np.floor(across).astype(int)
    nearest = np.full(along.shape, np.inf)
    for da in (-1, 0, 1):
        for db in (-1, 0, 1):
            a, b = cell_a + da, cell_b + db
            shift = offsets[a + reach, b + reach]
            dist = (along - a - 0.5 - shift[..., 0]) ** 2 + (across - b - 0.5 - shift[..., 1]) ** 2
            nearest = np.minimum(nearest, dist)
    return 1 - np.exp(-nearest / (2 * DOT_RADIUS ** 2))


def _speckles(pattern, y, x):
    """Uniform random values on square cells of side ``period``, phased; resolution-free."""
    cells = math.ceil(1 / pattern.period) + 2
    values = np.random.default_rng(pattern.seed).uniform(0, 1, (cells, cells))
    rows = np.floor(y / pattern.period + pattern.phase[1]).astype(int)
    cols = np.floor(x / pattern.period + pattern.phase[0]).astype(int)
    return values[rows, cols]


def pattern_field(pattern, resolution, where=None):
    """The pattern's value in [0, 1] (1: brightest) at every pixel centre ([H,W]), or only
    at the pixels of a boolean mask ``where`` ([n], row-major: a shape's pixels cost only
    their own work)."""
    y, x = _pixel_centres(resolution, where)
    if pattern.family == 'plain':
        return np.full(np.broadcast_shapes(y.shape, x.shape), pattern.level)
    if pattern.family == 'dotted':
        return _dots(pattern, y, x)
    if pattern.family == 'speckled':
        return _speckles(pattern, y, x)
    along, across = _lattice(pattern, y, x)
    wave = np.cos(2 * math.pi * along)
    if pattern.family == 'checked':
        wave = wave * np.cos(2 * math.pi * across)
    return 0.5 + 0.5 * wave


def render(scene, resolution=64, background=None):
    """The scene as an RGB PIL image, with no anti-aliasing: flat palette colours on
    black, or, for patterned shapes, the palette colour scaled to LOW..1 by the pattern;
    a ``background`` pattern paints the background grey within BACKGROUND_LEVELS."""
    pixels = np.zeros((resolution, resolution, 3)) + BACKGROUND
    if background is not None:
        lo, hi = BACKGROUND_LEVELS
        pixels[:] = 255 * (lo + (hi - lo) * pattern_field(background, resolution))[..., None]
    for shape in scene:
        mask = _mask(shape, resolution)
        scale = 1.0 if shape.pattern is None else \
            LOW + (1 - LOW) * pattern_field(shape.pattern, resolution, mask)[:, None]
        pixels[mask] = np.asarray(PALETTE[shape.colour]) * scale
    return Image.fromarray(np.round(pixels).astype(np.uint8))


class ShapesWorld:
    """Indexed access to an endless deterministic stream of scenes: scene ``i`` depends
    only on (seed, i), so any index range is a reproducible split. With ``texture`` the
    scene keeps the flat world's layout and draws a pattern per shape, then one for the
    background, from the same stream; it renders at TEXTURED_RESOLUTION by default."""

    def __init__(self, seed=0, resolution=None, min_shapes=1, max_shapes=MAX_SHAPES,
                 texture=False):
        self.seed = seed
        self.resolution = resolution or (TEXTURED_RESOLUTION if texture else 64)
        self.min_shapes = min_shapes
        self.max_shapes = max_shapes
        self.texture = texture

    def _sample(self, i):
        """(shapes, background pattern or None) of scene ``i``."""
        rng = np.random.default_rng([self.seed, i])
        shapes = sample_scene(rng, self.min_shapes, self.max_shapes)
        if not self.texture:
            return shapes, None
        shapes = [replace(s, pattern=sample_pattern(rng)) for s in shapes]
        return shapes, sample_pattern(rng)

    def scene(self, i):
        return self._sample(i)[0]

    def background(self, i):
        """The background pattern of scene ``i``; None in the flat world."""
        return self._sample(i)[1]

    def image(self, i):
        shapes, background = self._sample(i)
        return render(shapes, self.resolution, background)

    def caption(self, i):
        """Caption of scene ``i`` with a template picked by its own (seed, i) stream."""
        from .text import caption
        shapes, background = self._sample(i)
        return caption(shapes, np.random.default_rng([self.seed, i, 1]), background)

    def vqa(self, i):
        from .text import vqa_pairs
        return vqa_pairs(*self._sample(i))

    def pope(self, i, strategy='adversarial'):
        """POPE-style balanced yes/no pairs of scene ``i``, negatives drawn by its own
        (seed, i) stream (``text.pope_pairs``)."""
        from .text import pope_pairs
        return pope_pairs(self.scene(i), np.random.default_rng([self.seed, i, 3]), strategy)
