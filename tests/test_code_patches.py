"""The Fig. 4 study (unimm/evaluation/code_patches.py, unimm/apis/code_patches.py): the
within/between-code distance ratio on hand-made codes, code purity, patch and label
extraction against the renderer, the texture descriptor's invariances, the figure, and
the tool end to end on a tiny SPC export."""
import json

import numpy as np
import pytest
import torch

from unimm.datasets.shapes import PALETTE, ShapesWorld
from unimm.datasets.transforms import pil_to_tensor
from unimm.evaluation import code_patches as cp


def grouped(num_codes=10, copies=20, seed=0):
    """``num_codes`` random patches, each repeated ``copies`` times, coded by which it is."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(num_codes, 3, 8, 8, generator=g)
    codes = np.repeat(np.arange(num_codes), copies)
    return protos[codes], codes, protos


@pytest.mark.parametrize('kind', cp.DESCRIPTORS)
def test_codes_of_identical_patches_have_zero_within_distance(kind):
    patches, codes, _ = grouped()
    x = cp.describe(patches, kind)
    out = cp.within_between(x, codes, num_pairs=5000, groups=np.arange(len(codes)) // 4,
                            num_boot=50)
    assert out['within'] == 0.0 and out['between'] > 0.05 and out['ratio'] == 0.0
    assert out['ratio_ci'] == (0.0, 0.0)
    # the same tokens with the codes shuffled: codes say nothing, the ratio is ~1
    perm = cp.permuted_ratios(x, codes, num_perm=5, num_pairs=20000)
    assert all(abs(r - 1) < 0.08 for r in perm), perm


def test_random_codes_give_a_ratio_of_one_and_noisy_groups_lie_between():
    g = torch.Generator().manual_seed(1)
    patches = torch.rand(4000, 3, 8, 8, generator=g)
    codes = np.random.default_rng(0).integers(0, 50, 4000)
    x = cp.describe(patches, 'pixels')
    out = cp.within_between(x, codes, num_pairs=50000, groups=np.arange(4000) // 16,
                            num_boot=100)
    assert abs(out['ratio'] - 1) < 0.02
    lo, hi = out['ratio_ci']
    assert lo <= out['ratio'] <= hi and lo < 1 < hi + 0.01
    # prototypes + noise: the within distance is the noise's, between adds the prototypes'
    protos, codes, _ = grouped(num_codes=20, copies=100)
    noisy = protos + 0.1 * torch.randn(protos.shape, generator=g)
    out = cp.within_between(cp.describe(noisy, 'pixels'), codes, num_pairs=50000)
    # RMS of the difference of two noise draws: 0.1 * sqrt(2)
    assert out['within'] == pytest.approx(0.1 * 2 ** 0.5, rel=0.03)
    assert 0.2 < out['ratio'] < 0.6


def test_sampled_pairs_respect_the_codes():
    codes = np.array([3, 3, 7, 1, 7, 7, 9])  # code 1 and 9 have no partner
    within, between = cp.sample_pairs(codes, 2000, np.random.default_rng(0))
    assert len(within) == len(between) == 2000
    assert (codes[within[:, 0]] == codes[within[:, 1]]).all()
    assert (within[:, 0] != within[:, 1]).all()
    assert (codes[between[:, 0]] != codes[between[:, 1]]).all()
    # each token with a partner anchors a within pair equally often (5 such tokens)
    share = np.bincount(within[:, 0], minlength=7) / 2000
    assert share[[3, 6]].sum() == 0 and np.allclose(share[[0, 1, 2, 4, 5]], 0.2, atol=0.04)
    only = cp.sample_pairs(np.zeros(5, int), 10, np.random.default_rng(0))
    assert len(only[0]) == 10 and len(only[1]) == 0


def test_purity():
    assert cp.purity([0, 0, 0, 1, 1], ['a', 'a', 'b', 'b', 'b']) == pytest.approx(0.8)
    assert cp.purity([0, 1, 2], ['a', 'b', 'a']) == 1.0
    assert cp.purity([5, 5, 5, 5], ['a', 'b', 'c', 'c']) == 0.5


def test_spectrum_ignores_where_a_pattern_falls_and_its_hue():
    x = torch.arange(8.0).expand(8, 8)  # the column index
    stripes = 0.8 + 0.2 * torch.cos(2 * torch.pi * x / 4)
    shifted = 0.8 + 0.2 * torch.cos(2 * torch.pi * (x + 1) / 4)  # a circular shift
    red = torch.stack([stripes, 0 * stripes, 0 * stripes])
    yellow = torch.stack([shifted, shifted, 0 * shifted])
    d = cp.describe(torch.stack([red, yellow, torch.full((3, 8, 8), 0.5)]), 'spectrum')
    torch.testing.assert_close(d[0], d[1], rtol=1e-5, atol=1e-6)
    assert d[0].abs().sum() > 0.1 and d[2].abs().max() < 1e-6  # a plain patch: no contrast
    mean_removed = cp.describe(torch.stack([red, red + 0.1]), 'mean_removed')
    torch.testing.assert_close(mean_removed[0], mean_removed[1], rtol=0, atol=1e-6)


def test_token_patches_are_raster_order_grid_cells():
    ids = torch.arange(12.0).reshape(3, 4)  # 3 x 4 grid of 2 px cells, 2 images
    images = ids.repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None].repeat(2, 3, 1, 1)
    images[1] += 100
    patches = cp.token_patches(images, (3, 4))
    assert patches.shape == (24, 3, 2, 2)
    want = torch.cat([torch.arange(12.0), torch.arange(12.0) + 100])
    assert torch.equal(patches.amin((1, 2, 3)), want) and torch.equal(patches.amax((1, 2, 3)),
                                                                     want)


def test_token_labels_agree_with_the_rendered_pixels():
    world = ShapesWorld(seed=0, resolution=128, texture=True)
    index = range(100000, 100006)
    labels = cp.token_labels(world, index, (16, 16))
    patches = cp.token_patches(torch.stack([(pil_to_tensor(world.image(i)) + 1) / 2
                                            for i in index]), (16, 16))
    single = labels['single']
    assert 0.5 < single.mean() < 1
    for k in np.nonzero(single)[0]:
        rgb = patches[k].flatten(1)
        if labels['colour'][k] == 'background':  # dim grey: equal channels
            assert torch.allclose(rgb[0], rgb[1]) and torch.allclose(rgb[1], rgb[2])
            assert rgb.max() <= 0.31
        else:  # the palette colour's channels, scaled by the pattern
            on = torch.tensor(PALETTE[labels['colour'][k]]) > 0
            assert (rgb[~on] == 0).all() and (rgb[on] >= 0.59).all()
    families = set(labels['family'])
    assert families <= {'plain', 'striped', 'checked', 'dotted', 'speckled'}
    flat = cp.token_labels(ShapesWorld(seed=0), [100000], (8, 8))
    assert set(flat['family']) == {None} and 'background' in set(flat['colour'])


def test_figure_rows_and_drawing():
    patches, codes, protos = grouped(num_codes=6, copies=10)
    labels = {'colour': np.where(codes < 3, 'background', 'red')}
    codes = codes.copy()
    codes[codes == 1] = 0  # code 0 is the most frequent background code, then 2
    rows = cp.figure_rows(codes, labels, 4)
    assert rows == [0, 2, 3, 4]
    image = cp.draw_code_rows(patches, codes, rows, columns=5, scale=2)
    p, gap = 16, 2
    assert image.size == (120 + 5 * (p + gap), 5 * (p + gap) + gap)
    tile = np.asarray(image)[gap + 2 * (p + gap):gap + 2 * (p + gap) + p, 120:120 + p]
    want = (protos[3].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(tile[::2, ::2], want)  # the third row is code 3's: its one patch


@pytest.fixture(scope='module')
def tiny_exports(tmp_path_factory):
    """work_dirs-shaped folder with an SPC export at the flat world's 64 px / 8 px grid."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from unimm.registry import MODELS
    root = tmp_path_factory.mktemp('code_patches')
    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig(
        image_size=64, patch_size=8, hidden_size=32, intermediate_size=64,
        num_hidden_layers=1, num_attention_heads=2)).save_pretrained(root / 'siglip')
    model = MODELS.build(dict(
        type='SemHiTok', stage='spc',
        semantic_encoder=dict(type='SemanticEncoder', pretrained=str(root / 'siglip')),
        semantic_quantizer=dict(type='SemanticPriorityCodebook', num_codes=32, dim=8,
                                kmeans_init=False),
        semantic_decoder=dict(type='SemanticDecoder', in_dim=8, width=32, depth=1,
                              num_heads=2, out_dim=32, num_tokens=64)))
    model.save_pretrained(root / 'spc_flat64' / 'export')
    return root


def test_tool_writes_the_page_figure_and_numbers(tiny_exports, tmp_path):
    from unimm.apis.code_patches import code_patches
    doc, images, out = tmp_path / 'fig4.md', tmp_path / 'images', tmp_path / 'r.json'
    code_patches(['flat64'], 16, str(tiny_exports), doc=str(doc), images=str(images),
                 json_path=str(out), command='python tools/code_patches.py --worlds flat64')
    (result,) = json.loads(out.read_text())
    assert result['tokens'] == 16 * 64 and result['sghc'] is None
    row = result['distances']['pixels']['semantic code']
    assert 0 <= row['within'] and row['ratio'] == pytest.approx(row['within'] / row['between'])
    assert abs(row['permuted'][0] - 1) < 0.1
    assert result['purity']['colour, all tokens']['purity'] >= \
        result['purity']['colour, all tokens']['majority']
    by_scenes = result['purity_by_scenes']['colour']
    assert list(by_scenes) == ['16'] and by_scenes['16'] == pytest.approx(
        result['purity']['colour, all tokens']['purity'])
    page = doc.read_text()
    assert '## flat64: 16 held-out scenes (100000..)' in page
    assert '](images/spc_code_patches_flat64.png)' in page
    assert (images / 'spc_code_patches_flat64.png').is_file()
    with pytest.raises(FileNotFoundError, match='spc_textured128'):
        code_patches(['textured128'], work_dirs=str(tiny_exports), doc=str(doc),
                     images=str(images), json_path=str(out))
