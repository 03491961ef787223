"""The textured shapes world: deterministic patterned scenes on the flat world's layouts,
texts that name pattern families but no fine parameter, a scorer that reads every shape and
its pattern family from ground truth and fails images whose texture was removed, and the
option wired through datasets, the base dataset config and the reconstruction evaluator."""
import os
import re
from collections import Counter, defaultdict

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image, ImageFilter
from scipy import ndimage
from torch import nn

from unimm.datasets.shapes import (PATTERNS, ShapesWorld, background_pattern,
                                   parse_image, score_caption_attributes)
from unimm.datasets.shapes.world import BACKGROUND_LEVELS, LOW, pattern_field
from unimm.datasets.transforms import pil_to_tensor
from unimm.registry import DATASETS, METRICS

CONFIG = os.path.join(os.path.dirname(__file__), '..', 'registry_configs', '_base_',
                      'datasets', 'shapes_textured_images_128.py')


def kinds_colours(shapes):
    return sorted((s.kind, s.colour) for s in shapes)


def accuracies(world, indices, degrade=None):
    """Mean attribute accuracy, pattern accuracy and background-pattern accuracy of the
    scorer on (optionally degraded) rendered scenes."""
    attribute = pattern = background = 0.0
    for i in indices:
        scene, image = world.scene(i), world.image(i)
        image = degrade(image) if degrade else image
        found = parse_image(image, texture=True)
        attribute += score_caption_attributes(image, scene, found)
        pattern += score_caption_attributes(image, scene, found, pattern=True)
        background += background_pattern(image) == world.background(i).family
    return attribute / len(indices), pattern / len(indices), background / len(indices)


def mean_filled(image):
    """Every foreground component and the background replaced by its mean colour: the
    shapes' geometry and hue survive, their texture does not."""
    rgb = np.asarray(image, np.float32)
    labels, count = ndimage.label(rgb.max(-1) >= 127.5)
    out = np.empty_like(rgb)
    for label in range(count + 1):
        out[labels == label] = rgb[labels == label].mean(0)
    return Image.fromarray(out.round().astype(np.uint8))


def test_textured_world_is_deterministic_and_keeps_flat_layouts():
    world, again, flat = (ShapesWorld(seed=3, texture=True), ShapesWorld(seed=3, texture=True),
                          ShapesWorld(seed=3))
    assert world.resolution == 128 and flat.resolution == 64
    for i in (0, 7, 123):
        assert world.image(i).tobytes() == again.image(i).tobytes()
        assert world.caption(i) == again.caption(i) and world.vqa(i) == again.vqa(i)
        assert world.background(i) == again.background(i)
        layout = [(s.kind, s.colour, s.size, s.cx, s.cy) for s in world.scene(i)]
        assert layout == [(s.kind, s.colour, s.size, s.cx, s.cy) for s in flat.scene(i)]
        assert all(s.pattern.family in PATTERNS for s in world.scene(i))
        assert flat.background(i) is None and all(s.pattern is None for s in flat.scene(i))
    assert len({tuple(world.scene(i)) for i in range(50)}) == 50
    assert ShapesWorld(seed=4, texture=True).scene(7) != world.scene(7)
    families = Counter(s.pattern.family for i in range(200) for s in world.scene(i))
    assert set(families) == set(PATTERNS) and min(families.values()) > 60


def test_render_keeps_hue_foreground_and_grey_background():
    """A pattern only scales brightness: shape pixels keep their palette chromaticity at
    LOW..100% brightness, the foreground mask is the flat render's, the background is grey
    within BACKGROUND_LEVELS."""
    world, flat = ShapesWorld(seed=1, texture=True), ShapesWorld(seed=1, resolution=128)
    for i in range(20):
        rgb = np.asarray(world.image(i), np.float64)
        flat_rgb = np.asarray(flat.image(i), np.float64)
        shapes = flat_rgb.max(-1) > 0
        brightness = rgb.max(-1)
        assert ((brightness >= 127.5) == shapes).all()
        assert brightness[shapes].min() >= round(255 * LOW)
        hue = rgb[shapes] * 255 / brightness[shapes][:, None]
        assert np.abs(hue - flat_rgb[shapes]).max() <= 2
        grey = rgb[~shapes]
        assert (grey == grey[:, :1]).all()
        lo, hi = BACKGROUND_LEVELS
        assert 255 * lo - 1 <= grey.min() and grey.max() <= 255 * hi + 1


def test_texts_name_pattern_families_but_no_parameter():
    world = ShapesWorld(seed=7, texture=True)
    for i in range(100):
        scene, background, text = world.scene(i), world.background(i), world.caption(i)
        for s in scene:
            assert f'{s.size} {s.colour} {s.pattern.family} {s.kind}' in text, text
        assert text.endswith(f' on a {background.family} background'), text
        assert not re.search(r'\d|\b(period|angle|phase|jitter|frequency|seed|level)', text), text
        named = Counter((s.colour, s.kind) for s in scene)
        pattern_pairs = [(q, a) for q, a in world.vqa(i) if q.startswith('what pattern')]
        expected = [(f'what pattern is the {s.colour} {s.kind}?', s.pattern.family)
                    for s in scene if named[(s.colour, s.kind)] == 1]
        assert pattern_pairs == expected + [('what pattern is the background?', background.family)]
        for question, answer in world.vqa(i):
            assert re.fullmatch(r'[a-z]+|\d', answer) and not re.search(r'\d', question)
            assert not answer.isdigit() or question.startswith('how many'), (question, answer)


def test_same_family_differs_in_fine_parameters():
    world = ShapesWorld(seed=2, texture=True)
    by_family = defaultdict(list)
    for i in range(60):
        for pattern in [s.pattern for s in world.scene(i)] + [world.background(i)]:
            by_family[pattern.family].append(pattern)
    for family, patterns in by_family.items():
        assert len(set(patterns)) == len(patterns) > 5, family
        first, second = pattern_field(patterns[0], 128), pattern_field(patterns[1], 128)
        assert np.abs(first - second).max() > 0.1, family  # they fall differently on pixels
    periods = [p.period * 128 for p in by_family['striped']]
    assert 3 <= min(periods) and max(periods) <= 8 and max(periods) - min(periods) > 2


def test_pattern_is_resolution_free():
    """One pattern rendered at 128 and 256 px agrees where the 256 px grid samples the
    128 px pixel centres' neighbourhood (the field is a function of image fractions)."""
    world = ShapesWorld(seed=0, texture=True)
    for pattern in [world.background(i) for i in range(10)]:
        coarse, fine = pattern_field(pattern, 128), pattern_field(pattern, 256)
        assert np.abs(coarse - fine.reshape(128, 2, 128, 2).mean((1, 3))).mean() < 0.2


def test_scorer_reads_textured_ground_truth():
    world = ShapesWorld(seed=11, texture=True)
    for i in range(300):
        scene, found = world.scene(i), parse_image(world.image(i), texture=True)
        assert kinds_colours(found) == kinds_colours(scene), i
        assert sorted(d.size for d in found) == sorted(s.size for s in scene), i
    attribute, pattern, background = accuracies(world, range(300))
    assert attribute == 1.0 and pattern >= 0.99 and background >= 0.99
    attribute, pattern, background = accuracies(ShapesWorld(seed=12, resolution=256, texture=True),
                                                range(40))
    assert attribute == 1.0 and pattern >= 0.99 and background >= 0.99


def test_pattern_check_fails_when_texture_is_removed():
    """Flattening each component to its mean colour or box-blurring keeps the shapes
    readable but drops pattern accuracy far below ground truth's: the check reads texture."""
    world = ShapesWorld(seed=13, texture=True)
    attribute, pattern, background = accuracies(world, range(100), mean_filled)
    assert attribute == 1.0 and pattern < 0.35 and background < 0.35
    box_blurred = accuracies(world, range(100), lambda im: im.filter(ImageFilter.BoxBlur(2)))
    attribute, pattern, _ = box_blurred
    assert attribute > 0.9 and pattern < 0.6


def test_textured_datasets_and_config_build_from_registry():
    captions = DATASETS.build(dict(type='ShapesCaptionDataset', texture=True, start=5, length=3))
    world = ShapesWorld(seed=0, texture=True)
    item = captions[0]
    assert item['image'].shape == (3, 128, 128)
    assert torch.equal(item['image'], pil_to_tensor(world.image(5)))
    assert item['text'] == world.caption(5) and 'background' in item['text']
    vqa = DATASETS.build(dict(type='ShapesVQADataset', texture=True, resolution=160, length=3))
    assert [(x['index'], x['question'], x['answer']) for x in vqa] == \
        [(i, q, a) for i in range(3) for q, a in world.vqa(i)]
    assert vqa[0]['image'].shape == (3, 160, 160)
    flat = DATASETS.build(dict(type='ShapesCaptionDataset', length=1))
    assert flat[0]['image'].shape == (3, 64, 64) and flat[0]['text'] == ShapesWorld(0).caption(0)

    cfg = Config.fromfile(CONFIG)
    train, test = cfg.train_dataloader.dataset, cfg.test_cfg.recon.dataset
    assert (train.start, test.start) == (0, 100000)
    for dataset in (train, test):
        built = DATASETS.build(dict(dataset, length=2))
        assert built.world.texture and built[0]['image'].shape == (3, 128, 128)
    assert cfg.test_cfg.recon.type == 'ReconstructionEvaluator' and cfg.test_cfg.recon.shapes_scorer


class Passthrough(nn.Module):
    """A stand-in tokenizer whose reconstruction is ``blur`` of its input (one id per image)."""

    vocab_size, factorization = 4, None

    def __init__(self, blur=None):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.blur = blur or (lambda x: x)

    def encode(self, x):
        self.last = x
        return torch.zeros(len(x), 1, dtype=torch.long)

    def decode(self, ids):
        return self.blur(self.last)


def test_recon_evaluator_reports_pattern_accuracy_on_textured_data():
    cfg = Config.fromfile(CONFIG).test_cfg.recon.to_dict()
    cfg.update(lpips=None, fid=False, dataset=dict(cfg['dataset'], length=20))
    evaluator = METRICS.build(cfg)
    exact = evaluator(Passthrough())
    assert exact['attribute_accuracy'] == 1.0 and exact['pattern_accuracy'] >= 0.99
    blurred = evaluator(Passthrough(lambda x: nn.functional.avg_pool2d(x, 5, 1, 2)))
    assert blurred['pattern_accuracy'] < 0.6 < blurred['attribute_accuracy']
    flat = METRICS.build(dict(cfg, dataset=dict(type='ShapesCaptionDataset', length=10)))
    assert 'pattern_accuracy' not in flat(Passthrough())
