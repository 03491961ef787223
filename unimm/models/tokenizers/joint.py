"""Joint training, VILA-U / MUSE-VL style: one codebook on an encoder initialised from the
text-aligned teacher and trained, with the semantic loss (a semantic decoder's cosine to
the frozen teacher's features) and the pixel losses optimised together, where SemHiTok
decouples them into stages.

With ``init_from`` it is MUSE-VL's setup, the paper's Tab. 4 row "+ joint texture training":
encoder, code projection, codebook and semantic decoder start from a trained SPC (a
SemHiTok stage-1 export) and texture is then trained into them together with the semantic
loss; the codebook's usage statistics start from the SPC's, so dead-code restarts (the
quantizer's ``dead_code_threshold``, SGHC's rule: below a share of the mean usage) act on
the SPC's codes as they are used, not on an empty history."""
import os

import torch
from safetensors.torch import load_file

from unimm.models.encoders.semantic import code_projection, frozen_teacher
from unimm.models.losses import cosine_loss
from unimm.registry import MODELS

from .one_stage import OneStageTokenizer


# SemHiTok stage-1 weights -> this tokenizer's (the codebook is mapped on its own)
SPC_PREFIXES = {'semantic_encoder.': 'encoder.', 'semantic_proj.': 'proj.',
                'semantic_decoder.': 'semantic_decoder.'}


@MODELS.register_module()
class JointTokenizer(OneStageTokenizer):
    """Args:
        encoder: the trainable tower (``SemanticEncoder`` with ``frozen=False``, loaded from
            the teacher folder: "initialised from the teacher").
        teacher: the frozen target tower (``SemanticEncoder``, ``frozen=True``).
        quantizer: one codebook (``VectorQuantizer``) on the projected encoder features.
        semantic_decoder: codes -> teacher features (``SemanticDecoder``).
        pixel_decoder, pixel_loss, adv_weight, adaptive_adv_weight: as in SemHiTok.
        semantic_weight: weight of the cosine loss against the pixel losses.
        init_from: a SemHiTok stage-1 (SPC) export folder to start from (see the module
            docstring); its shapes must match (codebook ``num_codes`` x ``dim``, encoder,
            projection and semantic decoder). Not written to the export.
    """

    def __init__(self, encoder, teacher, quantizer, semantic_decoder, pixel_decoder,
                 pixel_loss, semantic_weight=1.0, adv_weight=0.1, adaptive_adv_weight=False,
                 init_from=None):
        super().__init__()
        self.encoder = MODELS.build(encoder)
        self.teacher = MODELS.build(frozen_teacher(teacher))
        self.quantizer = MODELS.build(quantizer)
        self.proj = code_projection(self.encoder.out_dim, self.quantizer.dim)
        self.semantic_decoder = MODELS.build(semantic_decoder)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.pixel_loss = MODELS.build(pixel_loss)
        self.semantic_weight = semantic_weight
        self.adv_weight, self.adaptive_adv_weight = adv_weight, adaptive_adv_weight
        if init_from:
            self.load_spc(init_from)

    def load_spc(self, folder):
        """Encoder, projection, codebook (and its usage statistics) and semantic decoder
        from the SPC export ``folder``; everything else keeps its fresh initialisation."""
        path = os.path.join(folder, self.WEIGHTS_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'JointTokenizer.init_from: {path} not found; point it at '
                                    'the export folder of a SemHiTok stage-1 run')
        spc = load_file(path)
        if 'semantic_quantizer.codebook' not in spc:
            raise ValueError(f'JointTokenizer.init_from: {folder} is not an SPC export (no '
                             'semantic_quantizer.codebook)')
        if not hasattr(self.quantizer, 'embedding'):
            raise ValueError('JointTokenizer.init_from needs a quantizer with a learnt code '
                             f'table (VectorQuantizer), not {type(self.quantizer).__name__}')
        state = {new + k[len(old):]: v for k, v in spc.items()
                 for old, new in SPC_PREFIXES.items() if k.startswith(old)}
        codebook = spc['semantic_quantizer.codebook'].float()
        state['quantizer.embedding.weight'] = codebook
        state['quantizer.embedding.shift'] = torch.zeros_like(codebook)
        if hasattr(self.quantizer, 'usage'):  # restarts on: their history is the SPC's
            state['quantizer.usage'] = spc['semantic_quantizer.cluster_size'].float()
        own = self.state_dict()
        wanted = [k for k in own if k.startswith(tuple(SPC_PREFIXES.values()))
                  or k in state]
        missing = [k for k in wanted if k not in state]
        bad = [k for k in wanted if k in state and own[k].shape != state[k].shape]
        if missing or bad:
            raise ValueError(f'JointTokenizer.init_from: {folder} does not fit this tokenizer: '
                             f'missing {missing[:5]}, other shapes {bad[:5]}')
        self.load_state_dict({k: state[k] for k in wanted}, strict=False)

    def export_config(self):
        cfg = super().export_config()
        cfg['init_from'] = None  # the weights are in the export
        return cfg

    def quantize(self, images):
        feats = self.encoder(images)
        return self.quantizer(self.proj(feats.to(self.proj[0].weight.dtype)))

    def forward(self, batch, discriminator=None, step=0):
        images = batch['image']
        q = self.quantize(images)
        out = self.pixel_losses(images, self.pixel_decoder(q.quantized), discriminator, step, q,
                                'vq')
        with torch.no_grad():
            target = self.teacher(images)
        out['loss_cosine'] = self.semantic_weight * cosine_loss(
            self.semantic_decoder(q.quantized), target)
        return out
