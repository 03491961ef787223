"""Exponential moving average of a module's trainable weights, kept in fp32."""
import torch


class EMA:
    """Shadow copy updated after each optimizer step; exported next to the raw weights."""

    def __init__(self, module, decay=0.999):
        self.decay = decay
        self.shadow = {n: p.detach().float().clone()
                       for n, p in module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, module):
        params = dict(module.named_parameters())
        for name, shadow in self.shadow.items():
            shadow.lerp_(params[name].detach().float(), 1.0 - self.decay)

    def state_dict(self):
        return {n: t.cpu() for n, t in self.shadow.items()}

    def load_state_dict(self, state):
        for name, shadow in self.shadow.items():
            shadow.copy_(state[name])

    def merged_state_dict(self, module):
        """The module's full state dict with trainable weights replaced by their EMA."""
        return {k: self.shadow[k].cpu() if k in self.shadow else v.detach().cpu()
                for k, v in module.state_dict().items()}
