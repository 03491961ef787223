"""PatchGAN discriminator (pix2pix / taming NLayerDiscriminator layout) with its GAN losses,
plus the generator-side helpers a GAN tokenizer uses.

How a tokenizer and the runner use it (see unimm/engine/runner.py):

* generator step: the runner passes the raw, frozen module as ``discriminator=``; the
  tokenizer calls ``logits = discriminator(images=recon)``, then
  ``g = generator_adversarial_loss(logits)``, scales it with
  ``adaptive_weight(nll, g, decoder_last_weight)`` and ``discriminator.started(step)``,
  and returns ``disc_inputs=dict(real=images, fake=recon.detach())``;
* discriminator step: the runner calls ``discriminator(**disc_inputs, step=step)`` and
  optimises the returned ``loss_disc``.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from unimm.models.base import PretrainedMixin
from unimm.registry import MODELS
from unimm.utils.dist import all_reduce_sum_, distributed

GAN_LOSS_TYPES = ('hinge', 'vanilla')


def hinge_d_loss(logits_real, logits_fake):
    """0.5 * (E[relu(1 - D(real))] + E[relu(1 + D(fake))]) (taming / LlamaGen scale)."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real, logits_fake):
    """0.5 * (BCE(D(real), 1) + BCE(D(fake), 0)), with logits."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def discriminator_loss(logits_real, logits_fake, loss_type='hinge'):
    if loss_type == 'hinge':
        return hinge_d_loss(logits_real, logits_fake)
    if loss_type == 'vanilla':
        return vanilla_d_loss(logits_real, logits_fake)
    raise ValueError(f'unknown GAN loss_type {loss_type!r}; one of {GAN_LOSS_TYPES}')


def generator_adversarial_loss(logits_fake, loss_type='hinge'):
    """Generator's adversarial loss on D(fake): hinge -> -E[D(fake)]; vanilla -> the
    non-saturating E[softplus(-D(fake))] (= BCE(D(fake), 1))."""
    if loss_type == 'hinge':
        return -logits_fake.mean()
    if loss_type == 'vanilla':
        return F.softplus(-logits_fake).mean()
    raise ValueError(f'unknown GAN loss_type {loss_type!r}; one of {GAN_LOSS_TYPES}')


def adaptive_weight(nll_loss, g_loss, last_layer, max=1e4, eps=1e-4):
    """VQGAN's adaptive adversarial weight ||grad nll|| / (||grad g|| + eps), clamped to
    [0, max] and detached; the gradients are taken w.r.t. ``last_layer`` (the decoder's
    last weight) with ``torch.autograd.grad``, so no ``.grad`` is touched and both graphs
    are kept for the real backward. Under data parallelism both gradients are averaged
    over the ranks first: the norms are not linear in the batch, so per-rank weights would
    make N GPUs train differently from one GPU at the same global batch. Returns 0 when
    autograd is off (evaluation)."""
    if not torch.is_grad_enabled():
        return torch.zeros((), device=nll_loss.device)
    nll_grad, = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)
    g_grad, = torch.autograd.grad(g_loss, last_layer, retain_graph=True)
    grads = torch.stack([nll_grad.float(), g_grad.float()])
    if distributed():
        all_reduce_sum_(grads)
        grads /= dist.get_world_size()
    weight = grads[0].norm() / (grads[1].norm() + eps)
    return weight.clamp(0.0, float(max)).detach()


def adversarial_terms(losses, images, recon, discriminator, step, weight, last_layer=None):
    """The generator side of the GAN for any pixel tokenizer: once ``discriminator`` has
    started, ``loss_adv`` (hinge on D(recon), times ``weight``, times VQGAN's adaptive
    weight against the ``loss*`` entries of ``losses`` when ``last_layer`` is given, also
    returned as ``adaptive_weight`` for the log) and the detached ``disc_inputs`` the runner
    steps the discriminator on; else ``{}``."""
    if discriminator is None or not discriminator.started(step):
        return {}
    g_loss = generator_adversarial_loss(discriminator(images=recon))
    out = {'disc_inputs': {'real': images, 'fake': recon.detach()}}
    if last_layer is not None:
        nll = sum(v for k, v in losses.items() if k.startswith('loss'))
        out['adaptive_weight'] = adaptive_weight(nll, g_loss, last_layer)
        weight = weight * out['adaptive_weight']
    return dict(out, loss_adv=g_loss * weight)


def _norm_layer(norm, channels):
    if norm == 'batch':
        return nn.BatchNorm2d(channels)
    if norm == 'group':
        return nn.GroupNorm(min(32, channels), channels)
    if norm == 'instance':
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == 'none':
        return nn.Identity()
    raise ValueError(f"norm: {norm!r} is not one of 'batch', 'group', 'instance', 'none'")


@MODELS.register_module()
class PatchGANDiscriminator(PretrainedMixin, nn.Module):
    """PatchGAN: ``num_layers`` stride-2 4x4 convs (channels base * 2^i, capped at 8x),
    one stride-1 conv and a 1-channel stride-1 conv -> a map of patch logits; a 256 px
    image with 3 layers gives [B, 1, 30, 30] (70x70 receptive fields).

    ``forward(images=x)`` -> logits. ``forward(real=..., fake=..., step=...)`` -> ``{
    'loss_disc': loss_weight * GAN loss, 'logits_real': ..., 'logits_fake': ...}`` (the
    last two detached means, for logging); before ``start_step`` the loss is
    ``0 * loss``: zero gradients, but a valid graph for DeepSpeed's backward.

    Args:
        in_channels, base_channels, num_layers: the architecture (pix2pix: 3, 64, 3).
        norm: 'batch' (taming), 'group', 'instance' or 'none'.
        loss_type: 'hinge' (0.5 * (relu(1 - real) + relu(1 + fake))) or 'vanilla'.
        start_step: the global step from which the discriminator (and, through
            ``started(step)``, the generator's adversarial term) is switched on.
        loss_weight: multiplies the discriminator loss.
    """
    compile_children = True  # forward branches on the step (an int): `compile` takes `net`

    def __init__(self, in_channels=3, base_channels=64, num_layers=3, norm='batch',
                 loss_type='hinge', start_step=0, loss_weight=1.0):
        super().__init__()
        if loss_type not in GAN_LOSS_TYPES:
            raise ValueError(f'loss_type: {loss_type!r} is not one of {GAN_LOSS_TYPES}')
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        self.loss_type = loss_type
        self.start_step = int(start_step)
        self.loss_weight = float(loss_weight)
        bias = norm == 'none'  # an affine norm follows every inner conv otherwise

        layers = [nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
                  nn.LeakyReLU(0.2, inplace=True)]
        channels = base_channels
        for i in range(1, num_layers + 1):
            out = base_channels * min(2 ** i, 8)
            stride = 2 if i < num_layers else 1
            layers += [nn.Conv2d(channels, out, 4, stride=stride, padding=1, bias=bias),
                       _norm_layer(norm, out), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self):
        """DCGAN init: convs N(0, 0.02), norm scales N(1, 0.02), biases 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.affine:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def started(self, step):
        """Whether the adversarial game is on at ``step`` (``step >= start_step``)."""
        return int(step) >= self.start_step

    def forward(self, real=None, fake=None, step=0, images=None):
        if images is not None:
            return self.net(images)
        if real is None or fake is None:
            raise ValueError('PatchGANDiscriminator: pass images= (logits) or both real= and '
                             'fake= (discriminator loss)')
        # two passes, as in taming / LlamaGen: batch-norm statistics of each set apart
        logits_real = self.net(real.detach())
        logits_fake = self.net(fake.detach())
        loss = self.loss_weight * discriminator_loss(logits_real, logits_fake, self.loss_type)
        if not self.started(step):
            loss = loss * 0.0
        return {'loss_disc': loss, 'logits_real': logits_real.detach().float().mean(),
                'logits_fake': logits_fake.detach().float().mean()}
