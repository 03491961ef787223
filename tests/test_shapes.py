"""The shapes world: deterministic scenes, exact parsing back from pixels, a GenEval-style
scorer that passes ground truth and fails perturbations, consistent text, and datasets."""
import hashlib
import json
import re
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from unimm.datasets.shapes import (BACKGROUND, COLOURS, GENEVAL_TAGS, KINDS, PALETTE,
                                   ShapesWorld, parse_image, relative_position, render,
                                   sample_geneval_prompts, sample_scene, scene_from_prompt,
                                   score_caption_attributes, score_prompt, vqa_pairs)
from unimm.datasets.shapes.scorer import clutter
from unimm.datasets.transforms import pil_to_tensor
from unimm.registry import DATASETS


def kinds_colours(shapes):
    return sorted((s.kind, s.colour) for s in shapes)


def blurred_noisy(image, seed):
    """Mild degradation a tokenizer reconstruction might show: blur and +-10 noise."""
    array = np.asarray(image.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.int16)
    noise = np.random.default_rng(seed).integers(-10, 11, array.shape)
    return Image.fromarray(np.clip(array + noise, 0, 255).astype(np.uint8))


def prompts_with_scenes(tag, n=20, seed=0):
    """(prompt, scene) pairs: ``n`` prompts of one tag with a scene satisfying each."""
    prompts = sample_geneval_prompts(seed, n, tags=(tag,))
    return [(p, scene_from_prompt(p, np.random.default_rng([seed, i]), max_distractors=2))
            for i, p in enumerate(prompts)]


def short_hash(data):
    return hashlib.sha256(data).hexdigest()[:16]


def test_flat_world_is_byte_identical_to_before_textures():
    """Hashes of flat images, texts, layouts and prompts computed before the textured
    world existed: ``texture=False`` (the default) must reproduce them exactly."""
    indices = (0, 1, 7, 123, 100000)
    images = b''.join(ShapesWorld(seed, res).image(i).tobytes()
                      for seed, res in ((0, 64), (3, 256), (1, 128)) for i in indices)
    texts = '\n'.join(ShapesWorld(seed).caption(i) + repr(ShapesWorld(seed).vqa(i))
                      for seed in (0, 3) for i in indices)
    layouts = repr([[(s.kind, s.colour, s.size, s.cx, s.cy) for s in ShapesWorld(0).scene(i)]
                    for i in range(20)])
    specs = sample_geneval_prompts(0, 5)
    prompt_images = b''.join(
        render(scene_from_prompt(p, np.random.default_rng([0, j]), max_distractors=2), 64).tobytes()
        for j, p in enumerate(specs))
    assert short_hash(images) == '05c903a375d936fe'
    assert short_hash(texts.encode()) == 'cbe644594169fbd2'
    assert short_hash(layouts.encode()) == 'e1e204418cfd188e'
    prompts = json.dumps(specs, sort_keys=True).encode() + prompt_images
    assert short_hash(prompts) == '998069bdcd8f882c'


def test_world_is_deterministic_per_seed_and_index():
    world, again = ShapesWorld(seed=3), ShapesWorld(seed=3)
    for i in (0, 7, 123):
        assert world.image(i).tobytes() == again.image(i).tobytes()
        assert world.caption(i) == again.caption(i)
        assert world.vqa(i) == again.vqa(i)
    scenes = {tuple(world.scene(i)) for i in range(50)}
    assert len(scenes) == 50
    assert ShapesWorld(seed=4).scene(7) != world.scene(7)
    assert sample_geneval_prompts(1, 10) == sample_geneval_prompts(1, 10)
    assert sample_geneval_prompts(1, 10) != sample_geneval_prompts(2, 10)


@pytest.mark.parametrize('resolution', [64, 256])
def test_render_is_flat_palette_colours(resolution):
    world = ShapesWorld(seed=0, resolution=resolution)
    allowed = {tuple(c) for c in PALETTE.values()} | {BACKGROUND}
    for i in range(10):
        image = world.image(i)
        assert image.mode == 'RGB' and image.size == (resolution, resolution)
        colours = {c for _, c in image.getcolors(resolution * resolution)}
        assert colours <= allowed  # no anti-aliasing: every pixel is exact
        assert colours - {BACKGROUND} == {PALETTE[s.colour] for s in world.scene(i)}
        array = np.asarray(image)
        edges = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
        assert (edges == BACKGROUND).all()  # shapes never touch the border


def test_parse_recovers_every_shape_at_64():
    world = ShapesWorld(seed=1, resolution=64)
    for i in range(300):
        scene = world.scene(i)
        found = parse_image(world.image(i))
        assert kinds_colours(found) == kinds_colours(scene), i
        assert sorted(d.size for d in found) == sorted(s.size for s in scene)
        assert score_caption_attributes(world.image(i), scene, found) == 1.0


@pytest.mark.parametrize('resolution', [64, 256])
@pytest.mark.parametrize('tag', GENEVAL_TAGS)
def test_scorer_passes_ground_truth(tag, resolution):
    for prompt, scene in prompts_with_scenes(tag):
        result = score_prompt(render(scene, resolution), prompt)
        assert result['correct'], (prompt, scene, result['reasons'])


def test_prompts_mirror_geneval_format():
    prompts = sample_geneval_prompts(0, 30)
    assert Counter(p['tag'] for p in prompts) == {tag: 30 for tag in GENEVAL_TAGS}
    for p in prompts:
        assert set(p) <= {'tag', 'include', 'exclude', 'prompt'}
        assert p['prompt'].startswith('a photo of ')
        for req in p['include'] + p.get('exclude', []):
            assert set(req) <= {'class', 'count', 'color', 'position'} and req['class'] in KINDS
        if p['tag'] == 'counting':
            assert p['exclude'] == [{'class': p['include'][0]['class'],
                                     'count': p['include'][0]['count'] + 1}]
        if p['tag'] == 'position':
            rel, target = p['include'][1]['position']
            assert target == 0 and f'{rel} a {p["include"][0]["class"]}' in p['prompt']


def test_scorer_fails_recoloured_shapes():
    for tag in ('colors', 'color_attr'):
        for prompt, scene in prompts_with_scenes(tag):
            req = prompt['include'][-1]
            i = next(i for i, s in enumerate(scene) if s.kind == req['class'])
            other = COLOURS[(COLOURS.index(req['color']) + 1) % len(COLOURS)]
            scene[i] = replace(scene[i], colour=other)
            assert not score_prompt(render(scene, 64), prompt)['correct'], prompt


def test_scorer_fails_missing_or_extra_shapes():
    for tag in ('counting', 'two_object', 'single_object'):
        for prompt, scene in prompts_with_scenes(tag):
            i = next(i for i, s in enumerate(scene) if s.kind == prompt['include'][-1]['class'])
            fewer = scene[:i] + scene[i + 1:]
            assert not score_prompt(render(fewer, 64), prompt)['correct'], prompt
    for prompt, scene in prompts_with_scenes('counting'):
        # one shape of another kind turned into the counted kind breaks the exact count
        extra = [i for i, s in enumerate(scene) if s.kind != prompt['include'][0]['class']]
        if extra:
            scene[extra[0]] = replace(scene[extra[0]], kind=prompt['include'][0]['class'])
            assert not score_prompt(render(scene, 64), prompt)['correct'], prompt


def test_scorer_fails_swapped_positions():
    for prompt, scene in prompts_with_scenes('position'):
        # the two named shapes trade kind and colour, keeping places and sizes
        a, b = scene[0], scene[1]
        scene[0] = replace(a, kind=b.kind, colour=b.colour)
        scene[1] = replace(b, kind=a.kind, colour=a.colour)
        result = score_prompt(render(scene, 64), prompt)
        assert not result['correct'] and 'expected' in result['reasons'][0], prompt


def test_attribute_accuracy_counts_wrong_shapes():
    scene = sample_scene(np.random.default_rng(5), min_shapes=4, max_shapes=4)
    assert score_caption_attributes(render(scene, 64), scene) == 1.0
    other = COLOURS[(COLOURS.index(scene[0].colour) + 1) % len(COLOURS)]
    wrong = [replace(scene[0], colour=other)] + scene[1:]
    assert score_caption_attributes(render(wrong, 64), scene) == 0.75
    moved = [replace(s, cx=1 - s.cx, cy=1 - s.cy) for s in scene]
    assert score_caption_attributes(render(moved, 64), scene) < 1.0


def test_parse_survives_blur_and_noise_at_256():
    world = ShapesWorld(seed=2, resolution=256)
    for i in range(40):
        scene, image = world.scene(i), blurred_noisy(world.image(i), i)
        assert kinds_colours(parse_image(image)) == kinds_colours(scene), i
        assert score_caption_attributes(pil_to_tensor(image), scene) == 1.0  # tensor input too
    for tag in GENEVAL_TAGS:
        for j, (prompt, scene) in enumerate(prompts_with_scenes(tag, n=5)):
            assert score_prompt(blurred_noisy(render(scene, 256), j), prompt)['correct'], prompt


def test_vqa_answers_agree_with_scene_and_pixels():
    world = ShapesWorld(seed=6)
    for i in range(100):
        scene = world.scene(i)
        found = Counter(d.kind for d in parse_image(world.image(i)))
        by_name = {(s.colour, s.kind): s for s in scene}
        for question, answer in world.vqa(i):
            assert re.fullmatch(r'[a-z0-9]+', answer), (question, answer)
            if m := re.fullmatch(r'how many (\w+)s are there\?', question):
                kind = m.group(1)
                expected = len(scene) if kind == 'shape' else sum(s.kind == kind for s in scene)
                assert answer == str(expected) == str(sum(found.values()) if kind == 'shape'
                                                       else found[kind])
            elif m := re.fullmatch(r'what color is the (\w+)\?', question):
                assert [s.colour for s in scene if s.kind == m.group(1)] == [answer]
            elif m := re.fullmatch(r'what shape is the (\w+) object\?', question):
                assert [s.kind for s in scene if s.colour == m.group(1)] == [answer]
            elif m := re.fullmatch(r'what size is the (\w+) (\w+)\?', question):
                assert by_name[m.groups()].size == answer
            elif m := re.fullmatch(r'is there a (\w+) (\w+)\?', question):
                assert (m.groups() in by_name) == (answer == 'yes')
            else:
                m = re.fullmatch(r'is the (\w+) (\w+) (to the left of|to the right of|above|below)'
                                 r' the (\w+) (\w+)\?', question)
                a, b = by_name[m.group(1, 2)], by_name[m.group(4, 5)]
                rel = m.group(3).replace('to the ', '')
                assert (rel in relative_position(a.bbox, b.bbox)) == (answer == 'yes'), question


def test_caption_names_every_shape():
    world = ShapesWorld(seed=7)
    for i in range(100):
        text = world.caption(i)
        for s in world.scene(i):
            assert f'{s.size} {s.colour} {s.kind}' in text, (text, world.scene(i))


def test_datasets_build_from_registry():
    captions = DATASETS.build(dict(type='ShapesCaptionDataset', resolution=64, length=10))
    assert len(captions) == 10
    item = captions[3]
    assert item['image'].shape == (3, 64, 64) and item['image'].dtype == torch.float32
    assert item['image'].min() == -1 and item['image'].max() == 1
    assert isinstance(item['text'], str) and item['index'] == 3
    world = ShapesWorld(seed=0, resolution=64)
    shifted = DATASETS.build(dict(type='ShapesCaptionDataset', start=5, length=2))
    assert torch.equal(shifted[0]['image'], pil_to_tensor(world.image(5)))
    assert shifted[0]['text'] == world.caption(5)
    with pytest.raises(IndexError):
        shifted[2]

    vqa = DATASETS.build(dict(type='ShapesVQADataset', resolution=32, length=4))
    pairs = [(i, q, a) for i in range(4) for q, a in vqa_pairs(world.scene(i))]
    assert len(vqa) == len(pairs)
    assert [(x['index'], x['question'], x['answer']) for x in vqa] == pairs
    assert vqa[0]['image'].shape == (3, 32, 32)

    prompts = DATASETS.build(dict(type='ShapesGenEvalPrompts', n_per_tag=4))
    assert len(prompts) == 24 and list(prompts) == sample_geneval_prompts(0, 4)


def test_strict_scorer_fails_noise_that_a_pixel_parser_reads_as_shapes():
    """Coloured blobs sprinkled around a correct scene pass the GenEval rules (extra
    objects are allowed) but not the strict parse check; the clean scene passes both."""
    rng = np.random.default_rng(0)
    for prompt, scene in prompts_with_scenes('single_object'):
        clean = render(scene, 64)
        noisy, background = np.asarray(clean).copy(), (np.asarray(clean) == BACKGROUND).all(-1)
        specks = noisy.copy()
        for image, side, count in ((noisy, 4, 8), (specks, 2, 30)):
            free, placed = background.copy(), 0
            while placed < count:  # blobs of palette colour on empty background
                y, x = rng.integers(1, 63 - side, size=2)
                if free[y - 1:y + side + 1, x - 1:x + side + 1].all():
                    image[y:y + side, x:x + side] = list(PALETTE.values())[
                        rng.integers(len(PALETTE))]
                    free[y - 1:y + side + 1, x - 1:x + side + 1] = False
                    placed += 1
        assert score_prompt(clean, prompt)['correct']
        for image, why in ((noisy, 'shapes (scenes hold'), (specks, 'unexplained foreground')):
            image = Image.fromarray(image)
            assert score_prompt(image, prompt, strict=False)['correct'], prompt
            failed = score_prompt(image, prompt)
            assert not failed['correct'] and why in failed['reasons'][0], prompt
        assert clutter(clean, parse_image(clean)) == pytest.approx(0.0, abs=1e-9)
