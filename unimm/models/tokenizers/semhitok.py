"""SemHiTok: a semantic-priority codebook (stage 1) with a semantic-guided hierarchical
pixel codebook hung under it (stage 2) and an enhanced pixel decoder (stage 3).
Token id contract: global id = i * m + j (i semantic code, j sub-code), its
``factorization``."""
import os

import torch
from safetensors.torch import load_file

from unimm.models.encoders.semantic import SemanticTeacher, code_projection
from unimm.models.losses import cosine_loss
from unimm.models.tokenizers.base import IdFactorization, ImageTokenizer
from unimm.models.tokenizers.fusion import check_fusion, fuse
from unimm.registry import MODELS

STAGES = ('spc', 'sghc', 'enhance')
# what each stage trains; everything else is frozen (weights, EMA codebooks, norms)
TRAINABLE = {'spc': ('semantic_proj', 'semantic_quantizer', 'semantic_decoder'),
             'sghc': ('pixel_encoder', 'pixel_quantizer', 'pixel_decoder'),
             'enhance': ('pixel_decoder',)}


@MODELS.register_module()
class SemHiTok(ImageTokenizer):
    """The tokenizer assembly. ``stage`` picks what trains and which losses run;
    ``init_from`` loads the previous stage's export (keys absent from it, or listed in
    ``init_exclude``, keep their fresh initialisation).

    Stage 1 distils: the SPC's decoded codes match the frozen ``teacher``'s features
    (``SemanticTeacher``: a ``SemanticEncoder`` config, by default the semantic encoder's
    ``pretrained`` folder; built in stage 1 only, never exported). The semantic encoder's
    ``init`` (``'teacher'`` / ``'random'``) and ``train_semantic_encoder`` (it trains in
    stage 1; frozen from stage 2 on) are independent."""

    def __init__(self, semantic_encoder, semantic_quantizer, semantic_decoder,
                 pixel_encoder=None, pixel_quantizer=None, pixel_decoder=None,
                 fusion='channel', stage='spc', init_from=None, init_exclude=(),
                 train_semantic_encoder=False, teacher=None, pixel_loss=None, adv_weight=0.1,
                 adaptive_adv_weight=False, llm_features='concat'):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f'SemHiTok.stage must be one of {STAGES}, got {stage!r}')
        check_fusion(fusion)
        self.stage, self.fusion = stage, fusion
        self.semantic_encoder = MODELS.build(semantic_encoder)
        self.semantic_quantizer = MODELS.build(semantic_quantizer)
        width, dim = self.semantic_encoder.out_dim, self.semantic_quantizer.dim
        self.semantic_proj = code_projection(width, dim)
        self.semantic_decoder = MODELS.build(semantic_decoder)
        fixed = not (train_semantic_encoder or init_from)  # keeps its config's weights
        self.teacher = SemanticTeacher(teacher, semantic_encoder, fixed) \
            if stage == 'spc' else None
        if stage != 'spc' and (pixel_decoder is None or pixel_loss is None or (
                fusion != 'semantic' and (pixel_encoder is None or pixel_quantizer is None))):
            raise ValueError(f'SemHiTok stage {stage!r} needs pixel_decoder and pixel_loss '
                             "(and, unless fusion='semantic', pixel_encoder and pixel_quantizer)")
        if llm_features not in ('concat', 'semantic'):
            raise ValueError(f"SemHiTok.llm_features must be 'concat' or 'semantic', got "
                             f'{llm_features!r}')
        self.pixel_encoder = MODELS.build(pixel_encoder) if pixel_encoder else None
        self.pixel_quantizer = MODELS.build(pixel_quantizer) if pixel_quantizer else None
        self.pixel_decoder = MODELS.build(pixel_decoder) if pixel_decoder else None
        self.pixel_loss = MODELS.build(pixel_loss) if pixel_loss else None
        self.adv_weight, self.adaptive_adv_weight = adv_weight, adaptive_adv_weight
        self.train_semantic_encoder = train_semantic_encoder
        self.llm_features = llm_features
        if init_from:
            self.load_previous_stage(init_from, init_exclude)
        self._freeze_for_stage()

    # ------------------------------------------------------------------ setup
    def load_previous_stage(self, folder, exclude=()):
        """Load matching weights of an exported SemHiTok (the previous stage)."""
        path = os.path.join(folder, self.WEIGHTS_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'SemHiTok.init_from: {path} not found; point it at the '
                                    'export folder of the previous stage (<work_dir>/export)')
        state = {k: v for k, v in load_file(path).items()
                 if not any(k.startswith(p) for p in exclude)}
        own = self.state_dict()
        bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        if bad:
            raise ValueError(f'SemHiTok.init_from: shapes differ for {bad[:5]}; list their '
                             'prefixes in init_exclude to train them from scratch')
        missing_stage1 = [k for k in own if k.startswith(('semantic_', )) and k not in state]
        if missing_stage1:
            raise ValueError(f'SemHiTok.init_from: {folder} lacks stage-1 weights '
                             f'{missing_stage1[:5]}')
        self.load_state_dict(state, strict=False)

    def _freeze_for_stage(self):
        trainable = set(TRAINABLE[self.stage])
        if self.stage == 'spc' and self.train_semantic_encoder:
            trainable.add('semantic_encoder')
        for name, child in self.named_children():
            if name == 'pixel_loss':
                child.requires_grad_(False)
                continue
            child.requires_grad_(name in trainable)
        if self.stage != 'spc':
            self.semantic_quantizer.freeze()
            if self.pixel_quantizer is not None and self.stage == 'enhance':
                self.pixel_quantizer.freeze()
        if self.stage == 'spc' and self.train_semantic_encoder:
            self.semantic_encoder.frozen = False

    def train(self, mode=True):
        super().train(mode)
        # frozen parts never leave eval mode (no dropout, no EMA or norm-stat drift)
        for name, child in self.named_children():
            if not any(p.requires_grad for p in child.parameters(recurse=True)) and \
                    name not in TRAINABLE[self.stage]:
                child.train(False)
        return self

    def export_config(self):
        cfg = super().export_config()
        cfg.update(init_from=None, init_exclude=[])
        if self.teacher is None:  # stages 2 and 3 build no teacher
            cfg['teacher'] = None
        return cfg

    @property
    def fp32_modules(self):
        """Frozen children on the path from pixels to token ids: the runner keeps them in
        fp32 under bf16 training, so training and export see the ids stage 1 gave."""
        names = ('semantic_encoder', 'semantic_proj', 'pixel_encoder', 'pixel_quantizer')
        return tuple(n for n in names if getattr(self, n) is not None and not any(
            p.requires_grad for p in getattr(self, n).parameters()))

    @property
    def factorization(self):
        """(K, m): global id = i * m + j; None without the SGHC branch (ids are then the
        semantic ids)."""
        if self.pixel_quantizer is None:
            return None
        return IdFactorization(self.pixel_quantizer.num_semantic_codes,
                               self.pixel_quantizer.sub_codes)

    @property
    def vocab_size(self):
        """K*m, or K without the SGHC branch."""
        if self.pixel_quantizer is not None:
            return self.pixel_quantizer.num_codes
        return self.semantic_quantizer.num_codes

    @property
    def features_dim(self):
        """Width of ``features``: semantic (+ texture with ``llm_features='concat'``)."""
        dim = self.semantic_quantizer.dim
        if self.pixel_quantizer is not None and self.llm_features == 'concat':
            dim += self.pixel_quantizer.dim
        return dim

    @property
    def num_tokens(self):
        """The semantic encoder's grid."""
        return self.semantic_encoder.num_tokens

    @property
    def image_size(self):
        return self.semantic_encoder.image_size

    # ------------------------------------------------------------- interface
    def semantic(self, images):
        """Semantic encoder features, and the SPC output of their projection."""
        feats = self.semantic_encoder(images)
        return feats, self.semantic_quantizer(self.semantic_proj(feats.to(
            self.semantic_proj[0].weight.dtype)))

    def _quantize(self, images):
        feats, sem = self.semantic(images)
        tex = None
        if self.pixel_quantizer is not None:
            z = self.pixel_encoder(images)
            tex = self.pixel_quantizer(z, semantic_ids=sem.ids)
        return feats, sem, tex

    @torch.no_grad()
    def encode(self, images):
        """Global ids i*m+j once the pixel branch exists, semantic ids in stage 1."""
        _, sem, tex = self._quantize(images)
        return sem.ids if tex is None else tex.ids

    def _decode_codes(self, sem_q, tex_q):
        return self.pixel_decoder(fuse(self.fusion, sem_q, tex_q))

    @torch.no_grad()
    def decode(self, ids):
        if self.pixel_decoder is None:
            raise RuntimeError('decode needs the pixel branch (stage 2 or 3 of SemHiTok)')
        sem_q = self.semantic_quantizer.lookup(self.semantic_ids(ids))
        tex_q = self.pixel_quantizer.lookup(ids) if self.pixel_quantizer is not None else None
        dtype = self.pixel_decoder.embed.weight.dtype
        return self._decode_codes(sem_q.to(dtype), None if tex_q is None else tex_q.to(dtype))

    @torch.no_grad()
    def features(self, images):
        """Quantised features for an LLM: semantic ‖ texture (or semantic only)."""
        _, sem, tex = self._quantize(images)
        if tex is None or self.llm_features == 'semantic':
            return sem.quantized
        return torch.cat([sem.quantized, tex.quantized.to(sem.quantized.dtype)], dim=-1)

    # -------------------------------------------------------------- training
    def forward(self, batch, discriminator=None, step=0):
        images = batch['image']
        if self.stage == 'spc':
            return self._spc_losses(images)
        return self._pixel_losses(images, discriminator, step)

    def _spc_losses(self, images):
        feats, sem = self.semantic(images)
        pred = self.semantic_decoder(sem.quantized)
        out = {'loss_cosine': cosine_loss(pred.float(), self.teacher(images, feats).float()),
               'loss_commit': sem.loss}
        out.update({f'spc/{k}': v for k, v in sem.stats.items()})
        return out

    def _pixel_losses(self, images, discriminator, step):
        with torch.no_grad():
            _, sem = self.semantic(images)
        tex = None
        if self.pixel_quantizer is not None:
            with torch.set_grad_enabled(self.stage == 'sghc'):
                tex = self.pixel_quantizer(self.pixel_encoder(images), semantic_ids=sem.ids)
        dtype = self.pixel_decoder.embed.weight.dtype
        recon = self._decode_codes(sem.quantized.detach().to(dtype),
                                   None if tex is None else tex.quantized.to(dtype))
        return self.pixel_losses(images, recon, discriminator, step,
                                 codebook=tex if self.stage == 'sghc' else None, prefix='sghc')

