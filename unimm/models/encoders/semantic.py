"""The semantic encoder: a SigLIP vision tower (``transformers.SiglipVisionModel``) giving
text-aligned patch features, loaded from a local teacher folder (frozen by default) or
randomly initialised with the same architecture (the paper's Tab. 4 ablation)."""
import torch
from torch import nn
from transformers import PretrainedConfig, SiglipVisionConfig, SiglipVisionModel

from unimm.models.encoders.siglip_teacher import check_hf_folder, quiet_transformers
from unimm.registry import MODELS

INITS = ('teacher', 'random')


def vision_architecture(config):
    """The architecture fields of a SiglipVisionConfig as a plain dict: the class's own
    fields only (no transformers version, dtype, folder name or label maps), so the
    result is JSON-able and rebuilds the same module on any transformers version."""
    generic = set(PretrainedConfig().to_dict())
    return {k: v for k, v in config.to_dict().items() if k not in generic}


def load_vision_tower(folder):
    """``SiglipVisionModel`` weights (float32) from a SigLIP folder, full or vision-only.

    transformers' load report (which lists a full export's text tower as unexpected) is
    silenced; instead a vision weight the folder lacks or has in another shape is an
    error, never a silently random layer. The pooling head is not needed (see below)."""
    with quiet_transformers():
        model, info = SiglipVisionModel.from_pretrained(folder, dtype=torch.float32,
                                                        output_loading_info=True)
    bad = [k for k in info['missing_keys'] if not k.startswith('head.')]
    bad += [str(k) for k in info['mismatched_keys']]
    if bad:
        raise ValueError(f'SemanticEncoder.pretrained: {folder!r} lacks SigLIP vision weights or '
                         f'has them in other shapes: {bad[:5]}{" ..." if len(bad) > 5 else ""}')
    return model


def code_projection(width, dim):
    """VQKD's projection of encoder features to a low-dim code space (Linear, Tanh, Linear),
    which SemHiTok's SPC and the semantic branches of the baselines quantise."""
    return nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, dim))


@MODELS.register_module()
class SemanticEncoder(nn.Module):
    """SigLIP patch features ``[B, N, C]`` in raster order (SigLIP has no CLS token).

    Args:
        pretrained: local HF folder of a SigLIP checkpoint (a full ``SiglipModel`` export
            such as the demo teacher's, or a vision-only one). ``init='teacher'`` loads its
            weights; ``init='random'`` reads only its config.
        vision_config: a ``SiglipVisionConfig`` as a dict; only with ``init='random'`` and
            instead of ``pretrained`` (this is what ``architecture_config`` writes).
        init: ``'teacher'`` (load weights) or ``'random'`` (same architecture, fresh weights).
        frozen: no parameter requires grad and the module stays in eval mode whatever
            ``train()`` is asked (so no dropout, ever).
        feature_layer: ``-1`` gives ``last_hidden_state`` (after SigLIP's post-layernorm,
            what the teacher was trained on); any other index gives the raw
            ``hidden_states[feature_layer]`` (0 = patch embeddings, LLaVA uses -2).

    Images come in ``[-1, 1]``, which is SigLIP's own normalisation ``(x - 0.5) / 0.5``,
    so they are fed as they are. Inputs of another size than the config's ``image_size``
    use SigLIP's position-embedding interpolation; ``grid_size`` is the native grid.
    The MAP pooling head is dropped: it is not part of patch features, and unused
    parameters would only cost compute and upset data-parallel training when trainable.
    Weights are kept in float32; the runner owns precision.
    """

    def __init__(self, pretrained=None, vision_config=None, init='teacher', frozen=True,
                 feature_layer=-1):
        super().__init__()
        if init not in INITS:
            raise ValueError(f'SemanticEncoder.init must be one of {INITS}, got {init!r}')
        if init == 'teacher':
            if vision_config is not None:
                raise ValueError("SemanticEncoder: init='teacher' takes the architecture from "
                                 "`pretrained`; leave `vision_config` unset")
            if not pretrained:
                raise ValueError("SemanticEncoder: init='teacher' needs `pretrained`, the local "
                                 'folder of a SigLIP checkpoint')
            check_hf_folder(pretrained, 'SemanticEncoder.pretrained')
            model = load_vision_tower(pretrained)
        else:
            if (pretrained is None) == (vision_config is None):
                raise ValueError("SemanticEncoder: init='random' takes its architecture from "
                                 'exactly one of `pretrained` (a folder) or `vision_config`')
            if pretrained is not None:
                check_hf_folder(pretrained, 'SemanticEncoder.pretrained')
                config = SiglipVisionConfig.from_pretrained(pretrained)
            else:
                config = SiglipVisionConfig(**dict(vision_config))
            model = SiglipVisionModel(config).float()
        if getattr(model, 'use_head', False):
            del model.head
            model.use_head = False
        model.config.vision_use_head = False
        self.model = model
        self.frozen = frozen
        self.feature_layer = feature_layer
        cfg = model.config
        self.image_size = cfg.image_size
        self.patch_size = cfg.patch_size
        if frozen:
            self.requires_grad_(False)
            self.train(False)

    @property
    def grid_size(self):
        side = self.image_size // self.patch_size
        return (side, side)

    @property
    def out_dim(self):
        return self.model.config.hidden_size

    @property
    def num_tokens(self):
        h, w = self.grid_size
        return h * w

    def train(self, mode=True):
        return super().train(False if self.frozen else mode)

    def forward(self, images):
        interpolate = tuple(images.shape[-2:]) != (self.image_size, self.image_size)
        dtype = self.model.embeddings.patch_embedding.weight.dtype
        if self.feature_layer == -1:
            return self.model(pixel_values=images.to(dtype),
                              interpolate_pos_encoding=interpolate).last_hidden_state
        out = self.model(pixel_values=images.to(dtype), interpolate_pos_encoding=interpolate,
                         output_hidden_states=True)
        return out.hidden_states[self.feature_layer]

    def architecture_config(self):
        """A registry config that rebuilds this module without the teacher folder: the
        architecture inline and random init, for a saved tokenizer whose own safetensors
        carry the weights (used by the assemblies' ``export_config``)."""
        return dict(type='SemanticEncoder', pretrained=None,
                    vision_config=vision_architecture(self.model.config), init='random',
                    frozen=self.frozen, feature_layer=self.feature_layer)


SELF_TEACHER = 'semantic_encoder'


def frozen_teacher(config):
    """``config`` of a teacher tower, checked to be frozen (it is the distillation target)."""
    if not config.get('frozen', True):
        raise ValueError('the teacher must stay frozen (it is the distillation target)')
    return config


def default_teacher(encoder):
    """The frozen teacher-init tower of the encoder config's ``pretrained`` folder and
    layer, or None when it names no folder (e.g. an export's inline architecture)."""
    if not encoder.get('pretrained'):
        return None
    return dict(type='SemanticEncoder', pretrained=encoder['pretrained'],
                feature_layer=encoder.get('feature_layer', -1))


def loads_teacher(encoder, teacher):
    """Whether the ``encoder`` config loads the same weights and layer as ``teacher``."""
    same = all(encoder.get(k, d) == teacher.get(k, d)
               for k, d in (('type', None), ('pretrained', None), ('feature_layer', -1)))
    return same and encoder.get('init', 'teacher') == teacher.get('init', 'teacher') == 'teacher'


class SemanticTeacher(nn.Module):
    """The frozen text-aligned teacher whose features are the cosine target of a semantic
    encoder's codes (VQKD / BEiT v2 distillation).

    ``teacher``: a ``SemanticEncoder`` config (must be frozen); ``'semantic_encoder'``, the
    encoder is its own teacher (only when ``encoder_fixed``); or None, a frozen tower
    loaded from the encoder config's ``pretrained`` folder. ``encoder_fixed`` says the
    encoder never trains and keeps the weights its config loads: a fixed encoder that
    loads the teacher's folder and layer gives the teacher's features, so they are
    computed once. The tower is held outside ``state_dict()`` / ``parameters()`` (exports,
    checkpoints and the optimizer never carry it) yet follows ``.to()`` and stays in eval
    mode; ``config`` is what an export writes (no folder)."""

    def __init__(self, teacher, encoder, encoder_fixed):
        super().__init__()
        if teacher is None:
            teacher = default_teacher(encoder)
        elif teacher != SELF_TEACHER:
            frozen_teacher(teacher)
        if teacher == SELF_TEACHER and not encoder_fixed:
            raise ValueError(f"teacher='{SELF_TEACHER}' needs a frozen semantic encoder: a "
                             'trained one would chase its own features')
        self.is_encoder = teacher == SELF_TEACHER or (
            encoder_fixed and teacher is not None and loads_teacher(encoder, teacher))
        # stored in __dict__, bypassing nn.Module registration (see the class docstring)
        self.__dict__['net'] = None if self.is_encoder or teacher is None \
            else MODELS.build(teacher)

    @property
    def config(self):
        return SELF_TEACHER if self.is_encoder else None

    def _apply(self, fn, recurse=True):
        if self.net is not None:
            self.net._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def forward(self, images, feats):
        """The target for ``feats``, the semantic encoder's output on ``images`` (no grad)."""
        if self.is_encoder:
            return feats.detach()
        if self.net is None:
            raise RuntimeError('the semantic loss needs a teacher: set `teacher` (a '
                               'SemanticEncoder config) or give the semantic encoder a '
                               '`pretrained` folder (an export carries no teacher)')
        with torch.no_grad():
            return self.net(images)

    def extra_repr(self):
        if self.is_encoder:
            return 'the semantic encoder itself'
        return 'none' if self.net is None else 'frozen SemanticEncoder, not in state_dict'
