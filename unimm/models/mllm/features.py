"""Vision feature adapters for the understanding model: a frozen module whose
``forward(images [B,3,H,W]) -> [B, N, out_dim]`` is what the projector reads.

``TokenizerFeatures`` gives a unimm tokenizer's features (SemHiTok: semantic ‖ texture, or
semantic only; the baselines: their quantised codes, Janus: its SigLIP tower's);
``ContinuousFeatures`` the raw features of an encoder (the
LLaVA / Janus-understanding baseline on the SigLIP tower, no quantisation)."""

from torch import nn

from unimm.models.base import PretrainedMixin, load_unimm_folder
from unimm.registry import MODELS


class _FrozenFeatures(PretrainedMixin, nn.Module):
    """Frozen, always in eval mode: the understanding recipe never trains the vision side."""

    def _freeze(self):
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode=True):
        return super().train(False)


@MODELS.register_module()
class TokenizerFeatures(_FrozenFeatures):
    """``tokenizer.features(images)`` of a frozen `ImageTokenizer` (SemHiTok or any baseline
    of ``models/tokenizers/``).

    Args:
        tokenizer: its export folder, or a registry config (random weights; benchmarks).
        llm_features: SemHiTok only: override its ``llm_features`` (``'concat'``: semantic ‖
            texture; ``'semantic'``: semantic only); None keeps the tokenizer's own.
    """

    def __init__(self, tokenizer, llm_features=None):
        super().__init__()
        overrides = {'llm_features': llm_features} if llm_features else {}
        if isinstance(tokenizer, str):
            self.tokenizer = load_unimm_folder(tokenizer, 'TokenizerFeatures.tokenizer',
                                               **overrides)
        else:
            self.tokenizer = MODELS.build(dict(tokenizer, **overrides), path='tokenizer')
        self._freeze()

    @property
    def out_dim(self):
        return self.tokenizer.features_dim

    @property
    def num_tokens(self):
        return self.tokenizer.num_tokens

    @property
    def image_size(self):
        return self.tokenizer.image_size

    def forward(self, images):
        return self.tokenizer.features(images)

    def export_config(self):
        # the tokenizer's export config holds any llm_features override it was built with
        return dict(type='TokenizerFeatures', tokenizer=self.tokenizer.export_config())


@MODELS.register_module()
class ContinuousFeatures(_FrozenFeatures):
    """An encoder's continuous patch features (e.g. ``SemanticEncoder`` on the SigLIP
    teacher with ``feature_layer=-2``, LLaVA's choice)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = MODELS.build(encoder, path='encoder')
        self._freeze()

    @property
    def out_dim(self):
        return self.encoder.out_dim

    @property
    def num_tokens(self):
        return self.encoder.num_tokens

    @property
    def image_size(self):
        return self.encoder.image_size

    def forward(self, images):
        return self.encoder(images)

    def export_config(self):
        return dict(type='ContinuousFeatures', encoder=self.encoder.architecture_config())
