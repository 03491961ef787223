"""LlamaGen's vector quantizer: a learnable codebook moved by the codebook loss (no EMA),
low-dimensional and l2-normalised codes (which keeps codebook usage high without
restarts), nearest code by Euclidean distance, straight-through gradients."""
import torch
import torch.nn.functional as F
from torch import nn

from unimm.registry import MODELS

from .output import QuantizerOutput, code_counts, perplexity


def chunked_argmin(distances, num_rows, chunk=8192):
    """argmin over codes of ``distances(rows) -> [len(rows), K]``, evaluated ``chunk`` rows
    at a time so the full [M, K] distance matrix never exists at once."""
    return torch.cat([distances(slice(i, i + chunk)).argmin(-1)
                      for i in range(0, num_rows, chunk)])


@MODELS.register_module()
class VectorQuantizer(nn.Module):
    """``forward(z [B,N,dim])`` -> ids of the nearest of ``num_codes`` codes.

    Args:
        num_codes, dim: codebook size and code dimension (LlamaGen: 16384 x 8).
        l2_norm: normalise features and codes before the search (LlamaGen's default).
        beta: commitment weight; the codebook term ``||sg(z) - q||^2`` has weight 1.
    """
    eager_only = True  # `compile` leaves it eager: code search, statistics, updates

    def __init__(self, num_codes=16384, dim=8, l2_norm=True, beta=0.25):
        super().__init__()
        self.num_codes, self.dim, self.l2_norm, self.beta = num_codes, dim, l2_norm, beta
        self.embedding = nn.Embedding(num_codes, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_codes, 1.0 / num_codes)

    def codes(self):
        """The [num_codes, dim] table as searched (fp32, unit-norm when ``l2_norm``)."""
        table = self.embedding.weight.float()
        return F.normalize(table, dim=-1) if self.l2_norm else table

    def prepare(self, z):
        """Features as the search sees them: fp32, unit-norm when ``l2_norm``."""
        z = z.float()
        return F.normalize(z, dim=-1) if self.l2_norm else z

    def distances(self, z, codes):
        """Squared Euclidean distances ``[M, K]`` of prepared rows ``z`` [M,d] to ``codes``."""
        return z.pow(2).sum(-1, keepdim=True) - 2 * z @ codes.t() + codes.pow(2).sum(-1)

    def quantize(self, z, ids):
        """QuantizerOutput for prepared features ``z`` [...,d] assigned to ``ids`` [...]:
        codebook + commitment loss, usage statistics, straight-through code vectors."""
        q = F.embedding(ids, self.codes())
        loss = F.mse_loss(q, z.detach()) + self.beta * F.mse_loss(z, q.detach())
        counts = code_counts(ids, self.num_codes)
        stats = {'usage': (counts > 0).float().mean(), 'perplexity': perplexity(counts)}
        return QuantizerOutput(quantized=z + (q - z).detach(), ids=ids, loss=loss, stats=stats)

    def forward(self, z):
        with torch.autocast(z.device.type, enabled=False):
            zf = self.prepare(z)
            flat, codes = zf.detach().reshape(-1, self.dim), self.codes().detach()
            ids = chunked_argmin(lambda rows: self.distances(flat[rows], codes), len(flat))
            out = self.quantize(zf, ids.view(z.shape[:-1]))
        out.quantized = out.quantized.to(z.dtype)
        return out

    def lookup(self, ids):
        """Code vectors of ``ids`` [...] -> [..., dim]."""
        return F.embedding(ids, self.codes())
