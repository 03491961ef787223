"""SGHC, the semantic-guided hierarchical codebook of stage 2: each semantic code i owns
m sub-codes, rows i*m .. i*m+m-1 of one [K*m, dim] table, and a patch is quantised only
against the m sub-codes of its semantic code. Global id = i*m + j, so id // m is always
the semantic id (SemHiTok's token contract: its ``factorization``)."""
import torch
import torch.nn.functional as F
from torch import nn

from unimm.registry import MODELS
from unimm.utils.dist import all_reduce_sum_, first_available

from .output import QuantizerOutput, code_counts, jittered, perplexity
from .table import CodeTable


@MODELS.register_module()
class HierarchicalCodebook(nn.Module):
    """Sub-codebooks per semantic code, learnt by the codebook loss (``update='loss'``,
    LlamaGen style, a ``CodeTable``) or by EMA (``update='ema'``, a buffer). Either way a
    restart lives outside the optimizer's reach, so it survives every ZeRO stage.

    A sub-code is dead when its EMA usage falls below ``dead_code_threshold`` times the
    average usage of its group's m sub-codes (a share, not a count: semantic codes differ
    by orders of magnitude in frequency); with ``restart`` it then jumps to (a jittered
    copy of) a random patch of the batch that carries the same semantic code.
    """
    eager_only = True  # `compile` leaves it eager: code search, statistics, updates

    def __init__(self, num_semantic_codes=16384, sub_codes=12, dim=32, l2_norm=True,
                 update='loss', beta=0.25, decay=0.99, eps=1e-5, dead_code_threshold=0.1,
                 restart=True):
        super().__init__()
        if update not in ('loss', 'ema'):
            raise ValueError(f"HierarchicalCodebook: update is 'loss' or 'ema', not {update!r}")
        self.num_semantic_codes, self.sub_codes, self.dim = num_semantic_codes, sub_codes, dim
        self.num_codes = num_semantic_codes * sub_codes
        self.l2_norm, self.update, self.beta = l2_norm, update, beta
        self.decay, self.eps = decay, eps
        self.dead_code_threshold, self.restart = dead_code_threshold, restart
        self.frozen = False
        init = torch.randn(self.num_codes, dim)
        init = F.normalize(init, dim=-1) if l2_norm else init
        if update == 'loss':
            self.embedding = CodeTable(init)
        else:
            self.register_buffer('table', init)
            self.register_buffer('embed_sum', torch.zeros(self.num_codes, dim))
        # EMA of assignment counts per sub-code, decayed only when its group is seen
        self.register_buffer('usage', torch.zeros(self.num_codes))

    @property
    def weight(self):
        """The raw [K*m, dim] table (fp32 in 'loss' mode, the buffer in 'ema' mode)."""
        return self.embedding() if self.update == 'loss' else self.table

    def _rows(self, rows):
        """Raw fp32 vectors of table ``rows`` (any index shape)."""
        if self.update == 'loss':
            return self.embedding(rows)
        return F.embedding(rows, self.table).float()

    def freeze(self):
        """No more updates or restarts and no gradients to the table, even in train mode."""
        self.frozen = True
        return self.requires_grad_(False)

    @property
    def updating(self):
        return self.training and not self.frozen

    def codes(self, rows):
        """Code vectors of table ``rows`` (any index shape), unit-norm when ``l2_norm``.
        EMA tables are kept unit-norm already; loss-mode rows are normalised on read."""
        vectors = self._rows(rows)
        return F.normalize(vectors, dim=-1) if self.l2_norm and self.update == 'loss' else vectors

    def lookup(self, ids):
        """Sub-code vectors of global ids [...] -> [..., dim]."""
        return self.codes(ids)

    def forward(self, z, semantic_ids):
        if semantic_ids.shape != z.shape[:-1]:
            raise ValueError(f'HierarchicalCodebook: semantic_ids {tuple(semantic_ids.shape)} '
                             f'do not match features {tuple(z.shape)}')
        semantic_ids = semantic_ids.long()
        with torch.autocast(z.device.type, enabled=False):
            zf = z.float()
            zf = F.normalize(zf, dim=-1) if self.l2_norm else zf
            with torch.no_grad():
                # the m sub-codes of each patch's semantic code: one gather of whole groups
                first = semantic_ids * self.sub_codes
                group = self._rows(first[..., None] + torch.arange(self.sub_codes,
                                                                   device=z.device))
                ids = first + self._nearest(zf, group)
            q = self.codes(ids)
            loss = self.beta * F.mse_loss(zf, q.detach())  # commitment
            if self.update == 'loss':
                loss = loss + F.mse_loss(q, zf.detach())  # codebook loss moves the codes
            counts = code_counts(ids, self.num_codes)
            stats = self._stats(counts)
            if self.updating:
                stats['dead_restarted'] = self._update(zf.detach(), ids, semantic_ids, counts)
            quantized = zf + (q - zf).detach()  # straight-through
        return QuantizerOutput(quantized=quantized.to(z.dtype), ids=ids, loss=loss, stats=stats)

    def _nearest(self, z, group):
        """Index j of the nearest of the m sub-codes ``group`` [B,N,m,d] of each patch."""
        group = group.float()
        dots = (group @ z.unsqueeze(-1)).squeeze(-1)  # [B,N,m]
        if self.l2_norm:  # unit-norm codes (once normalised): nearest = most similar
            if self.update == 'loss':
                dots = dots / group.norm(dim=-1).clamp_min(1e-12)  # as F.normalize does
            return dots.argmax(-1)
        return (group.pow(2).sum(-1) - 2 * dots).argmin(-1)

    def _stats(self, counts):
        used = counts.view(self.num_semantic_codes, self.sub_codes) > 0
        seen = used.any(-1).sum().clamp_min(1)
        return {'usage': used.float().mean(),
                # mean over the semantic codes in the batch of the share of their m codes used
                'group_usage': used.sum() / (seen * self.sub_codes),
                'perplexity': perplexity(counts)}

    @torch.no_grad()
    def _update(self, z, ids, semantic_ids, counts):
        """EMA statistics (summed over ranks), EMA codes in 'ema' mode, then restarts;
        returns how many sub-codes were restarted."""
        flat_ids, flat_z = ids.flatten(), z.reshape(-1, self.dim)
        counts = counts.float()
        sums = None
        if self.update == 'ema':
            sums = flat_z.new_zeros(self.embed_sum.shape).index_add_(0, flat_ids, flat_z)
            all_reduce_sum_(counts, sums)
        else:
            all_reduce_sum_(counts)
        # a group's statistics age only when the group is seen, so rare codes keep theirs
        seen = counts.view(self.num_semantic_codes, self.sub_codes).sum(-1) > 0
        seen = seen.repeat_interleave(self.sub_codes)
        usage = self.usage.float()
        usage = torch.where(seen, usage.lerp(counts, 1 - self.decay), usage)
        self.usage.copy_(usage)
        if sums is not None:
            embed_sum = self.embed_sum.float()
            embed_sum = torch.where(seen[:, None], embed_sum.lerp(sums, 1 - self.decay), embed_sum)
            mean = embed_sum / usage.clamp_min(self.eps)[:, None]
            mean = F.normalize(mean, dim=-1) if self.l2_norm else mean
            trusted = (seen & (usage > self.eps))[:, None]
            self.table.copy_(torch.where(trusted, mean, self.table.float()))
            self.embed_sum.copy_(embed_sum)
        if not self.restart:
            return 0.
        return self._restart_dead(flat_z, semantic_ids.flatten(), seen)

    def _restart_dead(self, z, semantic_ids, seen):
        """Dead sub-codes of groups seen this step take a random patch of the same
        semantic code, slightly jittered (the lowest rank's, when distributed). At most K (the
        number of semantic codes) restart in a step, the lowest rows first and the rest on
        later steps: the work has one size on every rank and never waits for the GPU.
        Returns how many restarted (a tensor)."""
        usage = self.usage.view(self.num_semantic_codes, self.sub_codes)
        fair = usage.mean(-1, keepdim=True)
        dead = (usage < self.dead_code_threshold * fair).flatten() & seen
        # dead rows first, in row order (stable): the same rows on every rank
        rows = torch.sort((~dead).to(torch.uint8), stable=True).indices[:self.num_semantic_codes]
        restart = dead[rows]
        groups = rows // self.sub_codes
        # patches sorted by semantic code: group g's patches are order[start[g]:start[g]+n[g]]
        order = semantic_ids.argsort()
        n = code_counts(semantic_ids, self.num_semantic_codes)
        start = n.cumsum(0) - n
        offset = (torch.rand(len(rows), device=z.device) * n[groups]).long()
        pick = (start[groups] + torch.minimum(offset, n[groups] - 1)).clamp_min(0)
        new = jittered(z[order[pick]])  # nudged before ranks agree: one draw for all
        new = first_available(F.normalize(new, dim=-1) if self.l2_norm else new,
                              n[groups] > 0)
        keep = ~restart[:, None]
        self.usage[rows] = torch.where(restart, fair.flatten()[groups], self.usage[rows])
        if self.update == 'loss':
            self.embedding.restart_(rows, new, restart)
        else:
            self.table[rows] = torch.where(keep, self.table[rows], new.to(self.table.dtype))
            self.embed_sum[rows] = torch.where(
                keep, self.embed_sum[rows],
                (new * self.usage[rows, None]).to(self.embed_sum.dtype))
        return restart.sum().float()
