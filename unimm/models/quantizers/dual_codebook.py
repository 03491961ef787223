"""TokenFlow's dual codebook: a semantic and a pixel codebook of the same size whose
entries are paired by one shared index, chosen by a single argmin over
``d_sem + pixel_weight * d_pix`` so that one id carries both kinds of information."""
import torch
from torch import nn

from unimm.registry import MODELS

from .output import QuantizerOutput
from .vq import VectorQuantizer, chunked_argmin


@MODELS.register_module()
class DualCodebookQuantizer(nn.Module):
    """``forward(z [B,N,semantic_dim+pixel_dim])``: the first ``semantic_dim`` channels are
    the semantic features, the rest the pixel features; ``quantized`` and ``lookup(ids)``
    are laid out the same way. Each half is a ``VectorQuantizer`` (learnable,
    l2-normalised, codebook + commitment loss); only the index is shared."""
    eager_only = True  # `compile` leaves it eager: code search, statistics, updates

    def __init__(self, num_codes=16384, semantic_dim=8, pixel_dim=8, pixel_weight=1.0,
                 l2_norm=True, beta=0.25):
        super().__init__()
        self.num_codes, self.pixel_weight = num_codes, pixel_weight
        self.split = (semantic_dim, pixel_dim)
        self.dim = semantic_dim + pixel_dim
        self.semantic = VectorQuantizer(num_codes, semantic_dim, l2_norm, beta)
        self.pixel = VectorQuantizer(num_codes, pixel_dim, l2_norm, beta)

    def shared_ids(self, z_sem, z_pix):
        """argmin_k d_sem(z_sem, e_sem_k) + pixel_weight * d_pix(z_pix, e_pix_k) for prepared
        features [M, d_s] and [M, d_p]."""
        cs, cp = self.semantic.codes().detach(), self.pixel.codes().detach()
        z_sem, z_pix = z_sem.detach(), z_pix.detach()
        return chunked_argmin(lambda rows: self.semantic.distances(z_sem[rows], cs)
                              + self.pixel_weight * self.pixel.distances(z_pix[rows], cp),
                              len(z_sem))

    def forward(self, z):
        with torch.autocast(z.device.type, enabled=False):
            z_sem, z_pix = z.split(self.split, dim=-1)
            z_sem, z_pix = self.semantic.prepare(z_sem), self.pixel.prepare(z_pix)
            ids = self.shared_ids(z_sem.reshape(-1, self.split[0]),
                                  z_pix.reshape(-1, self.split[1])).view(z.shape[:-1])
            sem, pix = self.semantic.quantize(z_sem, ids), self.pixel.quantize(z_pix, ids)
        quantized = torch.cat([sem.quantized, pix.quantized], dim=-1).to(z.dtype)
        return QuantizerOutput(quantized=quantized, ids=ids, loss=sem.loss + pix.loss,
                               stats=sem.stats)  # one index: the usage stats are shared

    def lookup(self, ids):
        """Semantic ‖ pixel code vectors of ``ids`` [...] -> [..., semantic_dim + pixel_dim]."""
        return torch.cat([self.semantic.lookup(ids), self.pixel.lookup(ids)], dim=-1)
