"""LlamaGen's vector quantizer: a learnable codebook moved by the codebook loss (no EMA),
low-dimensional and l2-normalised codes, nearest code by Euclidean distance,
straight-through gradients; optionally dead-code restarts (off in LlamaGen)."""
import torch
import torch.nn.functional as F
from torch import nn

from unimm.registry import MODELS
from unimm.utils.dist import all_reduce_sum_, broadcast_

from .output import QuantizerOutput, code_counts, jittered, perplexity
from .spc import sample_rows
from .table import CodeTable


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
        dead_code_threshold: with a value > 0, a code whose EMA usage (``decay``) falls
            below this share of the mean usage jumps to a random feature of the batch
            (rank 0's draw) while training; 0 turns restarts off, as in LlamaGen.
    """
    eager_only = True  # `compile` leaves it eager: code search, statistics, updates

    def __init__(self, num_codes=16384, dim=8, l2_norm=True, beta=0.25,
                 dead_code_threshold=0.0, decay=0.99):
        super().__init__()
        self.num_codes, self.dim, self.l2_norm, self.beta = num_codes, dim, l2_norm, beta
        self.dead_code_threshold, self.decay = dead_code_threshold, decay
        self.embedding = CodeTable(torch.empty(num_codes, dim).uniform_(-1.0 / num_codes,
                                                                        1.0 / num_codes))
        if dead_code_threshold > 0:
            self.register_buffer('usage', torch.zeros(num_codes))

    def codes(self):
        """The [num_codes, dim] table as searched (fp32, unit-norm when ``l2_norm``)."""
        table = self.embedding()
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
        if self.training and self.dead_code_threshold > 0:
            stats['dead_restarted'] = self._restart_dead(z.detach().reshape(-1, self.dim),
                                                         counts)
        return QuantizerOutput(quantized=z + (q - z).detach(), ids=ids, loss=loss, stats=stats)

    @torch.no_grad()
    def _restart_dead(self, z, counts):
        """Codes whose EMA usage (summed over ranks) is below ``dead_code_threshold`` of
        the mean take random rows of ``z``, jittered; fixed-size work, no wait for the GPU.
        Returns how many restarted (a tensor)."""
        counts = counts.float()
        all_reduce_sum_(counts)
        usage = self.usage.float().lerp(counts, 1 - self.decay)
        dead = usage < self.dead_code_threshold * usage.mean()
        new = jittered(sample_rows(z, self.num_codes))
        broadcast_(new)
        self.embedding.restart_(torch.arange(self.num_codes, device=z.device), new, dead)
        self.usage.copy_(torch.where(dead, usage.mean(), usage))
        return dead.sum().float()

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
