"""Stage 0 of the demo: a tiny SigLIP (image + text towers, sigmoid loss) trained on a
caption corpus, saved as a normal HF folder that later stages load like a real SigLIP."""
import math
import os
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from torch import nn
from transformers import (AutoTokenizer, PreTrainedTokenizerFast, SiglipConfig,
                          SiglipImageProcessor, SiglipModel)
from transformers.utils import logging as hf_logging

from unimm.registry import DATASETS, MODELS

SPECIAL = ['[PAD]', '[UNK]', '[EOS]']


def train_word_tokenizer(texts):
    """A word-level tokenizer over the corpus' words (lower-cased, punctuation split)."""
    tok = Tokenizer(models.WordLevel(unk_token='[UNK]'))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator((t.lower() for t in texts),
                            trainers.WordLevelTrainer(special_tokens=SPECIAL))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token='[PAD]', unk_token='[UNK]',
                                   eos_token='[EOS]')


@contextmanager
def quiet_transformers():
    """transformers' warnings and progress bars off for a block: its load reports, and the
    token-id check it runs on a default SigLIP text config (vocabulary 32000, ids 49406 /
    49407) while saving."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def check_hf_folder(path, what):
    if not os.path.isfile(os.path.join(path, 'config.json')):
        raise FileNotFoundError(
            f'{what}: {path!r} is not a Hugging Face model folder (no config.json). Put the '
            'checkpoint there (e.g. the export of registry_configs/demo/shapes_siglip.py, or a '
            'copy of google/siglip-large-patch16-256 at checkpoints/siglip-large-patch16-256); '
            'nothing is downloaded at run time.')


@MODELS.register_module()
class SiglipTeacher(nn.Module):
    """SiglipModel + tokenizer; ``pretrained`` loads a folder, otherwise a fresh model is
    built from ``vision_config`` / ``text_config`` with a vocabulary from ``vocab_dataset``."""

    def __init__(self, pretrained=None, vision_config=None, text_config=None,
                 vocab_dataset=None, max_text_len=32):
        super().__init__()
        if pretrained:
            check_hf_folder(pretrained, 'SiglipTeacher.pretrained')
            # float32 whatever the folder's dtype (a bf16 checkpoint too): the runner owns
            # precision
            self.model = SiglipModel.from_pretrained(pretrained, dtype=torch.float32)
            # the demo's export has a tokenizer.json; a google/siglip-* folder has only a
            # sentencepiece spiece.model (SiglipTokenizer)
            self.tokenizer = AutoTokenizer.from_pretrained(pretrained)
        else:
            if vocab_dataset is None:
                raise ValueError('SiglipTeacher: give `pretrained` or `vocab_dataset`')
            corpus = DATASETS.build(vocab_dataset)
            self.tokenizer = train_word_tokenizer(corpus[i]['text'] for i in range(len(corpus)))
            text = dict(text_config or {}, vocab_size=len(self.tokenizer),
                        max_position_embeddings=max_text_len,
                        pad_token_id=self.tokenizer.pad_token_id,
                        eos_token_id=self.tokenizer.eos_token_id,
                        bos_token_id=self.tokenizer.eos_token_id)
            self.model = SiglipModel(SiglipConfig(text_config=text,
                                                  vision_config=dict(vision_config or {})))
            # SigLIP's initial temperature and bias (t = 10, b = -10); HF's (1, 0) collapses
            self.model.logit_scale.data.fill_(math.log(10.0))
            self.model.logit_bias.data.fill_(-10.0)
        self.max_text_len = self.model.config.text_config.max_position_embeddings

    def tokenize(self, texts):
        device = self.model.logit_scale.device
        return self.tokenizer([t.lower() for t in texts], padding='max_length', truncation=True,
                              max_length=self.max_text_len, return_tensors='pt'
                              ).input_ids.to(device)

    def forward(self, batch):
        out = self.model(input_ids=self.tokenize(batch['text']), pixel_values=batch['image'],
                         return_loss=True)
        return {'loss': out.loss, 'logit_scale': self.model.logit_scale.exp().detach()}

    def embed_images(self, images):
        feats = self.model.get_image_features(pixel_values=images.to(self.model.logit_scale.dtype))
        return F.normalize(getattr(feats, 'pooler_output', feats), dim=-1)

    def embed_texts(self, texts):
        feats = self.model.get_text_features(input_ids=self.tokenize(texts))
        feats = getattr(feats, 'pooler_output', feats)
        return F.normalize(feats, dim=-1)

    def save_pretrained(self, folder, state_dict=None):
        if state_dict is not None:
            state_dict = {k[len('model.'):]: v for k, v in state_dict.items()
                          if k.startswith('model.')}
        with quiet_transformers():
            self.model.save_pretrained(folder, state_dict=state_dict)
        self.tokenizer.save_pretrained(folder)
        size = self.model.config.vision_config.image_size
        SiglipImageProcessor(size={'height': size, 'width': size}, image_mean=[0.5] * 3,
                             image_std=[0.5] * 3).save_pretrained(folder)

    @classmethod
    def from_pretrained(cls, folder):
        return cls(pretrained=folder)
