"""SPC, the semantic-priority codebook of stage 1: a VQKD / BEiT-v2 style quantizer of
l2-normalised features against an EMA-updated unit-norm codebook (cosine nearest code,
spherical k-means init on the first training batch, dead-code restart)."""
import torch
import torch.nn.functional as F
from torch import nn

from unimm.registry import MODELS
from unimm.utils.dist import all_reduce_sum_, broadcast_

from .output import QuantizerOutput, code_counts, perplexity


def nearest_code(z, codes, chunk=8192):
    """Index of the code with the largest dot product with each row of ``z`` [M,d]
    (cosine for unit vectors), in row chunks so the [M,K] scores never exist at once."""
    return torch.cat([(part @ codes.t()).argmax(-1) for part in z.split(chunk)])


def sample_rows(z, n):
    """``n`` random rows of ``z`` (without replacement when there are enough)."""
    if len(z) >= n:
        return z[torch.randperm(len(z), device=z.device)[:n]]
    return z[torch.randint(len(z), (n,), device=z.device)]


@MODELS.register_module()
class SemanticPriorityCodebook(nn.Module):
    """Cosine-similarity VQ whose codebook is a buffer kept up to date by EMA, not by the
    optimizer. In eval mode or once ``freeze()`` is called it is a fixed, deterministic
    lookup (stage 2 and later rely on that)."""
    eager_only = True  # `compile` leaves it eager: code search, statistics, updates

    def __init__(self, num_codes=16384, dim=32, decay=0.99, eps=1e-5, kmeans_init=True,
                 kmeans_iters=10, dead_code_threshold=1.0, commitment_weight=0.25):
        super().__init__()
        if kmeans_init and kmeans_iters < 1:
            raise ValueError('SemanticPriorityCodebook: kmeans_init needs kmeans_iters >= 1')
        self.num_codes, self.dim = num_codes, dim
        self.decay, self.eps = decay, eps
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.commitment_weight = commitment_weight
        self.frozen = False
        self.register_buffer('codebook', F.normalize(torch.randn(num_codes, dim), dim=-1))
        # EMA of per-code assignment counts and of the sums of the assigned vectors
        self.register_buffer('cluster_size', torch.ones(num_codes))
        self.register_buffer('embed_sum', self.codebook.clone())
        self.register_buffer('initted', torch.tensor(not kmeans_init))

    def freeze(self):
        """No more EMA updates, k-means or restarts, even in train mode."""
        self.frozen = True
        return self

    @property
    def updating(self):
        return self.training and not self.frozen

    def forward(self, z):
        with torch.autocast(z.device.type, enabled=False):
            flat = F.normalize(z.float(), dim=-1).reshape(-1, self.dim)
            if self.updating and not self.initted:
                self._kmeans_init(flat.detach())
            codebook = self.codebook.float()
            ids = nearest_code(flat.detach(), codebook)
            q = codebook[ids]
            loss = self.commitment_weight * F.mse_loss(flat, q)
            counts = code_counts(ids, self.num_codes)
            stats = {'usage': (counts > 0).float().mean(), 'perplexity': perplexity(counts)}
            if self.updating:
                self._ema_update(flat.detach(), ids, counts)
                stats['dead_restarted'] = self._restart_dead(flat.detach())
            quantized = flat + (q - flat).detach()  # straight-through
        return QuantizerOutput(quantized=quantized.view(z.shape).to(z.dtype),
                               ids=ids.view(z.shape[:-1]), loss=loss, stats=stats)

    def lookup(self, ids):
        """Unit-norm code vectors of ``ids`` [...] -> [..., dim]."""
        return F.embedding(ids, self.codebook)

    @torch.no_grad()
    def _kmeans_init(self, z):
        """Spherical k-means over the first training batch (of all ranks together)."""
        centres = sample_rows(z, self.num_codes)
        broadcast_(centres)
        for _ in range(self.kmeans_iters):
            ids = nearest_code(z, centres)
            sums = torch.zeros_like(centres).index_add_(0, ids, z)
            counts = code_counts(ids, self.num_codes).float()
            all_reduce_sum_(sums, counts)
            centres = torch.where(counts[:, None] > 0, F.normalize(sums, dim=-1), centres)
        self.codebook.copy_(centres)
        self.cluster_size.copy_(counts)
        self.embed_sum.copy_(sums)
        self.initted.fill_(True)

    @torch.no_grad()
    def _ema_update(self, z, ids, counts):
        sums = z.new_zeros(self.embed_sum.shape).index_add_(0, ids, z)
        counts = counts.float()
        all_reduce_sum_(sums, counts)
        size = self.cluster_size.float().lerp(counts, 1 - self.decay)
        embed_sum = self.embed_sum.float().lerp(sums, 1 - self.decay)
        # a code with (almost) no EMA mass keeps its direction instead of collapsing to 0
        codebook = torch.where(size[:, None] > self.eps, F.normalize(embed_sum, dim=-1),
                               self.codebook.float())
        for buffer, value in ((self.cluster_size, size), (self.embed_sum, embed_sum),
                              (self.codebook, codebook)):
            buffer.copy_(value)

    @torch.no_grad()
    def _restart_dead(self, z):
        """Codes used less than ``dead_code_threshold`` times per step (EMA) jump to random
        vectors of the batch; returns how many did. Rank 0's choice is broadcast."""
        dead = self.cluster_size < self.dead_code_threshold
        num_dead = int(dead.sum())
        if num_dead:
            new = sample_rows(z, num_dead)
            broadcast_(new)
            self.codebook[dead] = new.to(self.codebook.dtype)
            self.embed_sum[dead] = (new * self.dead_code_threshold).to(self.embed_sum.dtype)
            self.cluster_size[dead] = self.dead_code_threshold
        return float(num_dead)
