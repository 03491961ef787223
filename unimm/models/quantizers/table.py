"""A code table learnt by gradient whose rows can also be restarted outside the optimizer.

DeepSpeed keeps an fp32 master copy of every trainable parameter (ZeRO 1/2/3, and ZeRO-0
under bf16) and copies it back into the parameter after each step, so a dead-code restart
written into the parameter would be undone at the next ``engine.step()``. Here the table
is ``weight + shift``: the optimizer owns ``weight``, a restart moves the row through the
``shift`` buffer, which no optimizer touches."""
import torch
import torch.nn.functional as F
from torch import nn


class CodeTable(nn.Module):
    """``[num_codes, dim]`` code vectors; ``forward(rows)`` reads rows (any index shape),
    ``forward()`` the whole table, both in fp32. Read it through ``forward`` so ZeRO-3
    gathers ``weight`` first."""

    def __init__(self, init):
        super().__init__()
        self.weight = nn.Parameter(init.clone())
        self.register_buffer('shift', torch.zeros_like(init))

    @property
    def num_codes(self):
        return self.weight.shape[0]

    def forward(self, rows=None):
        if rows is None:
            return self.weight.float() + self.shift.float()
        return F.embedding(rows, self.weight).float() + F.embedding(rows, self.shift).float()

    @torch.no_grad()
    def restart_(self, rows, new, mask):
        """Rows ``rows`` [R] (distinct) where ``mask`` [R] holds take the vectors ``new``
        [R, dim]; the others keep theirs."""
        delta = torch.where(mask[:, None], new.float() - self(rows), 0.)
        self.shift.index_add_(0, rows, delta.to(self.shift.dtype))
