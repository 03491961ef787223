"""Read shapes back from pixels and check GenEval-style claims against them.

Pixels brighter than half the palette's brightness are foreground; their colour is the
palette entry nearest in chromaticity (rgb / max channel), which blur towards the black
background leaves unchanged. Connected components per colour, minus specks, are the
shapes; the kind comes from the component's geometry inside its bounding box.

In the textured world the pattern family of a component (or of the background) comes
from brightness statistics inside it, which are blind to the fine parameters: near
constant -> plain; gradients all along one direction -> striped; a minority of dark
pixels -> dotted; a sharp spectral peak -> checked; otherwise -> speckled.
"""
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from .world import MAX_SHAPES, PALETTE, SIZES, relative_position

_CHROMA = np.array(list(PALETTE.values()), np.float32) / 255.0
_NAMES = list(PALETTE)
_SIZE_SPLIT = sum(SIZES.values())  # bbox side halfway between small and large
FOREGROUND = 127.5  # max channel at or above: a foreground pixel
# Pattern thresholds between the ranges measured on rendered ground truth at 128 px.
PLAIN_CV = 0.03  # brightness std / mean below: plain (plain 0, textures >= 0.09)
STRIPE_COHERENCE = 0.6  # gradient-orientation coherence above: striped (1.0 vs <= 0.34)
DOT_DARK_SHARE = 0.3  # share of darker-than-midrange pixels below: dotted (<= 0.26 vs >= 0.34)
CHECK_PEAK = 0.2  # spectral energy share of the strongest peak above: checked (>= 0.25 vs <= 0.16)


@dataclass(frozen=True)
class DetectedShape:
    """A shape found in an image; centre, bbox (x0, y0, x1, y1) and area are fractions
    of the image side (area: of the image area); ``pattern``: its pattern family when
    parsed as textured, else None."""
    kind: str
    colour: str
    size: str
    cx: float
    cy: float
    area: float
    bbox: tuple
    pattern: str = None


def to_rgb_array(image):
    """PIL image, uint8 HxWx3 array or [-1, 1] float tensor CxHxW -> float32 HxWx3 in [0, 255]."""
    if isinstance(image, torch.Tensor):
        return ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    if isinstance(image, Image.Image):
        image = image.convert('RGB')
    return np.asarray(image, dtype=np.float32)


def classify_kind(mask):
    """Kind of a filled component from its bbox-cropped mask: a square fills its box, a
    circle ~79% of it, triangle and diamond half, the triangle's mass sitting low."""
    fill = mask.mean()
    if fill >= 0.9:
        return 'square'
    if fill >= 0.65:
        return 'circle'
    rows = np.nonzero(mask)[0]
    low = (rows.mean() - (mask.shape[0] - 1) / 2) / mask.shape[0]
    return 'triangle' if low > 0.08 else 'diamond'


def _orientation_coherence(value, interior):
    """How much the brightness gradients inside ``interior`` share one orientation: 1 for
    stripes, near 0 for isotropic textures (structure-tensor coherence)."""
    gy, gx = np.gradient(value)
    jxx, jyy, jxy = ((g * h)[interior].sum() for g, h in ((gx, gx), (gy, gy), (gx, gy)))
    return float(np.hypot(jxx - jyy, 2 * jxy) / max(jxx + jyy, 1e-9))


def _peak_share(centred):
    """Share of the spectral energy of ``centred`` (zero outside the region) in its
    strongest peak and the peak's mirror image (5x5 bins each, at 2x zero-padding)."""
    n = 1 << int(np.ceil(np.log2(2 * max(centred.shape))))
    power = np.abs(np.fft.fft2(centred, s=(n, n))) ** 2
    peak = np.unravel_index(power.argmax(), power.shape)
    window = np.ix_(*[(np.arange(-2, 3) + c) % n for c in peak])
    return float(2 * power[window].sum() / max(power.sum(), 1e-9))


def classify_pattern(pixels, mask):
    """Pattern family of the region ``mask`` of ``pixels`` (HxWx3, 0-255), from the
    brightness (max channel) two pixels inside its edge; see the module docstring."""
    value = np.asarray(pixels, np.float32).max(-1)
    interior = ndimage.binary_erosion(mask, iterations=2)
    if interior.sum() < 16:
        return 'plain'
    inside = value[interior]
    mean, std = inside.mean(), inside.std()
    if std < PLAIN_CV * max(mean, 1.0):
        return 'plain'
    filled = np.where(mask, value, mean)  # the region's own edge adds no gradient
    inner = ndimage.binary_erosion(mask, iterations=3)
    if _orientation_coherence(filled, inner) > STRIPE_COHERENCE:
        return 'striped'
    low, high = np.percentile(inside, [2, 98])
    if (inside < (low + high) / 2).mean() < DOT_DARK_SHARE:
        return 'dotted'
    if _peak_share(np.where(interior, value - mean, 0.0)) > CHECK_PEAK:
        return 'checked'
    return 'speckled'


def background_pattern(image, margin=2):
    """Pattern family of the background: the non-foreground pixels at least ``margin``
    pixels away from any foreground pixel."""
    rgb = to_rgb_array(image)
    away = ~ndimage.binary_dilation(rgb.max(-1) >= FOREGROUND, iterations=margin)
    return classify_pattern(rgb, away)


def parse_image(image, min_area=0.003, texture=False):
    """Detected shapes of an image, sorted by area (largest first); components smaller
    than ``min_area`` of the image are ignored as reconstruction specks. ``texture``:
    also classify each shape's pattern family (`classify_pattern`)."""
    rgb = to_rgb_array(image)
    height, width = rgb.shape[:2]
    value = rgb.max(-1)
    chroma = rgb / np.maximum(value, 1.0)[..., None]
    # argmin_p |c - p|^2 = argmin_p (|p|^2 - 2 c.p)
    nearest = ((_CHROMA ** 2).sum(-1) - 2 * chroma @ _CHROMA.T).argmin(-1)
    nearest[value < FOREGROUND] = -1
    found = []
    for index, colour in enumerate(_NAMES):
        labels, _ = ndimage.label(nearest == index)
        for label, box in enumerate(ndimage.find_objects(labels), start=1):
            mask = labels[box] == label
            area = mask.sum() / (height * width)
            if area < min_area:
                continue
            ys, xs = np.nonzero(mask)
            y0, x0 = box[0].start, box[1].start
            side = max(mask.shape[0] / height, mask.shape[1] / width)
            found.append(DetectedShape(
                kind=classify_kind(mask), colour=colour,
                size='small' if side < _SIZE_SPLIT else 'large',
                cx=(x0 + xs.mean() + 0.5) / width, cy=(y0 + ys.mean() + 0.5) / height,
                area=float(area),
                bbox=(x0 / width, y0 / height, box[1].stop / width, box[0].stop / height),
                pattern=classify_pattern(rgb[box], mask) if texture else None))
    return sorted(found, key=lambda d: -d.area)


def clutter(image, detections):
    """Share of the image that is foreground but in no detected shape (specks, noise)."""
    rgb = to_rgb_array(image)
    return float((rgb.max(-1) >= FOREGROUND).mean()) - sum(d.area for d in detections)


def parse_failures(image, detections, max_objects=MAX_SHAPES, max_clutter=0.02):
    """Why an image does not read as a shapes-world scene: more shapes than a scene ever
    holds, or more than ``max_clutter`` of it foreground that no shape explains. GenEval's
    detector sees no objects in noise; a pixel parser sees many, so these fail instead."""
    reasons = []
    if max_objects is not None and len(detections) > max_objects:
        reasons.append(f'unparseable: {len(detections)} shapes (scenes hold <= {max_objects})')
    if max_clutter is not None and clutter(image, detections) > max_clutter:
        reasons.append(f'unparseable: {clutter(image, detections):.3f} of the image is '
                       f'unexplained foreground (> {max_clutter})')
    return reasons


def score_prompt(image, prompt_spec, detections=None, strict=True):
    """GenEval's check of one prompt: each included class present at least ``count``
    times with the asked colour and position, each excluded class fewer than its
    ``count`` times. GenEval takes a class's ``count`` most confident detections; here
    those of the asked colour come first, then the largest. ``strict``: an image that
    fails `parse_failures` is wrong. Returns dict(correct, reasons, detections)."""
    detections = parse_image(image) if detections is None else detections
    reasons = parse_failures(image, detections) if strict else []
    matched_groups = []
    for req in prompt_spec.get('include', []):
        name, count = req['class'], req['count']
        candidates = sorted((d for d in detections if d.kind == name),
                            key=lambda d: (d.colour != req.get('color'), -d.area))
        found = candidates[:count]
        matched = len(found) >= count
        if not matched:
            reasons.append(f'expected {name}>={count}, found {len(found)}')
        elif 'color' in req and sum(d.colour == req['color'] for d in found) < count:
            matched = False
            reasons.append(f"expected {req['color']} {name}>={count}, found "
                           f"{[d.colour for d in found]}")
        if matched and 'position' in req:
            rel, target = req['position']
            if matched_groups[target] is None:
                matched = False
                reasons.append(f'no target for {name} to be {rel}')
            elif not all(rel in relative_position(d.bbox, t.bbox)
                         for d in found for t in matched_groups[target]):
                matched = False
                reasons.append(f'expected {name} {rel} target')
        matched_groups.append(found if matched else None)
    for req in prompt_spec.get('exclude', []):
        n = sum(d.kind == req['class'] for d in detections)
        if n >= req['count']:
            reasons.append(f"expected {req['class']}<{req['count']}, found {n}")
    return {'correct': not reasons, 'reasons': reasons, 'detections': detections}


def score_caption_attributes(image, scene, detections=None, pattern=False):
    """Fraction of the scene's shapes matched one-to-one by a detection of the same kind
    and colour whose centre lies within the shape's half-extent of the true centre;
    ``pattern``: the detection must also show the shape's pattern family (textured world;
    ``detections`` then need to be parsed with ``texture=True``)."""
    detections = list(parse_image(image, texture=pattern) if detections is None else detections)
    hits = 0
    for shape in scene:
        match = next((d for d in detections if d.kind == shape.kind and d.colour == shape.colour
                      and np.hypot(d.cx - shape.cx, d.cy - shape.cy) <= shape.extent
                      and (not pattern or d.pattern == shape.pattern.family)), None)
        if match is not None:
            detections.remove(match)
            hits += 1
    return hits / len(scene) if scene else 1.0
