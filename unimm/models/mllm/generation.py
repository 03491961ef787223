"""Text-to-image generation on a discrete image tokenizer (any `ImageTokenizer`: SemHiTok
or a baseline): an HF causal LM whose vocabulary is extended by the tokenizer's
``vocab_size`` visual tokens plus ``<boi>`` / ``<eoi>``.

Sequence: [bos] caption ``<boi>`` visual tokens (raster order) ``<eoi>``; the loss is
the visual head's cross-entropy on the visual tokens only (``<eoi>`` is not a target:
sampling always stops after h*w tokens). During training a caption is replaced by the
unconditional prompt (an empty caption) with probability ``uncond_prob``, which is what
classifier-free guidance at inference needs.

`VisualVocabularyMixin` holds all of it (vocabulary, sequences, loss, sampling, export)
for any model with an ``llm`` and a text ``tokenizer``: `GenerationMLLM` is the mixin on
its own, `UnifiedMLLM` (unified.py) adds the understanding path to the same LLM.
"""
import os
import shutil

import torch
from torch import nn

from unimm.models.base import PretrainedMixin, load_unimm_folder, sub_state
from unimm.models.mllm.llm import enable_gradient_checkpointing, load_llm
from unimm.models.tokenizers.base import IdFactorization
from unimm.registry import MODELS

LLM_HINT = ('Download the LLM there (e.g. `huggingface-cli download Qwen/Qwen2.5-3B --local-dir '
            'checkpoints/Qwen2.5-3B`); for the demo: python tools/make_tiny_lm.py --arch qwen2 '
            '--out work_dirs/tiny_qwen2')


def load_image_tokenizer(folder, what='GenerationMLLM.image_tokenizer'):
    """A frozen unimm tokenizer export."""
    tokenizer = load_unimm_folder(
        folder, what,
        hint='Train one (bash tools/run_demo.sh for the demo), or pass image_tokenizer=None '
             'with num_visual (or num_semantic and sub_codes) and num_image_tokens to train '
             'on pre-tokenised shards (tools/pretokenize.py)')
    tokenizer.requires_grad_(False)
    return tokenizer.eval()


def given_vocabulary(num_visual, num_semantic, sub_codes, num_image_tokens):
    """The visual vocabulary a config names: ``num_visual`` ids (default K*m), the
    factorisation (K, m) when both are given, and ``num_image_tokens``; None where unset."""
    if (num_semantic is None) != (sub_codes is None):
        raise ValueError(f'give both num_semantic and sub_codes, or neither (got '
                         f'{num_semantic}, {sub_codes})')
    factorization = IdFactorization(num_semantic, sub_codes) if sub_codes else None
    if num_visual is None and factorization:
        num_visual = num_semantic * sub_codes
    return dict(num_visual=num_visual, factorization=factorization,
                num_image_tokens=num_image_tokens)


def tokenizer_vocabulary(tokenizer):
    """The visual vocabulary of an `ImageTokenizer`."""
    return dict(num_visual=tokenizer.vocab_size, factorization=tokenizer.factorization,
                num_image_tokens=tokenizer.num_tokens)


class VisualVocabularyMixin:
    """The generation path on an HF causal LM: visual vocabulary, training sequences and
    loss, CFG sampling (`CFGSampler` reads ``llm``, ``visual_head``, ``text_vocab``,
    ``num_image_tokens`` and ``tokenizer``), decoding and the export folder.

    The host module sets ``self.llm`` and ``self.tokenizer`` (text), then calls
    `_init_visual_vocabulary`. Export layout: ``llm/`` (HF model + text tokenizer),
    ``image_tokenizer/`` (the frozen export, copied byte for byte), ``config.json`` and
    ``model.safetensors`` (the weights outside the folders, e.g. a factorized head's)."""

    LLM_FOLDER, TOKENIZER_FOLDER = 'llm', 'image_tokenizer'
    FOLDER_PREFIXES = ('llm.', 'image_tokenizer.')  # state-dict keys saved in sub-folders

    def _init_visual_vocabulary(self, image_tokenizer, text_vocab, visual_head, uncond_prob,
                                max_caption_tokens, pack_length, given=None):
        """``image_tokenizer``: an export folder, an already loaded tokenizer module (kept
        with ``image_tokenizer_folder`` set by the caller), or None (pre-tokenised data);
        ``given``: the config's `given_vocabulary`, checked against the tokenizer's."""
        name = type(self).__name__
        self.image_tokenizer = None
        given = given or given_vocabulary(None, None, None, None)
        if isinstance(image_tokenizer, str):
            self._image_tokenizer_folder = image_tokenizer
            image_tokenizer = load_image_tokenizer(image_tokenizer, f'{name}.image_tokenizer')
        if image_tokenizer is not None:
            self.image_tokenizer = image_tokenizer
            found = tokenizer_vocabulary(image_tokenizer)
            clash = {k: (v, found[k]) for k, v in given.items() if v is not None and v != found[k]}
            if clash:
                raise ValueError(f'{name}: {clash} (given, image tokenizer) disagree')
            given = found
        elif given['num_visual'] is None or given['num_image_tokens'] is None:
            raise ValueError(f'{name}: without image_tokenizer, give num_visual (or '
                             f'num_semantic and sub_codes) and num_image_tokens (got {given})')
        self.num_visual, self.factorization = given['num_visual'], given['factorization']
        self.num_image_tokens = given['num_image_tokens']
        self.text_vocab = text_vocab or self.llm.get_input_embeddings().num_embeddings
        self.boi_id = self.text_vocab + self.num_visual
        self.eoi_id = self.boi_id + 1
        if self.llm.get_input_embeddings().num_embeddings != self.eoi_id + 1:
            self.llm.resize_token_embeddings(self.eoi_id + 1, mean_resizing=False)
        self.visual_head = MODELS.build(visual_head, default_args=dict(
            hidden_size=self.llm.config.hidden_size, num_visual=self.num_visual,
            factorization=self.factorization))
        self.visual_head.attach(self.llm, self.text_vocab)
        if not 0 <= uncond_prob <= 1:
            raise ValueError(f'{name}.uncond_prob: {uncond_prob} is not in [0, 1]')
        self.uncond_prob = uncond_prob
        self.max_caption_tokens = max_caption_tokens
        self.pack_length = pack_length
        self._sampler = None

    def train(self, mode=True):
        super().train(mode)
        if self.image_tokenizer is not None:
            self.image_tokenizer.eval()  # frozen: no dropout, no codebook updates
        return self

    # ------------------------------------------------------------- sequences
    def caption_prompt_ids(self, captions):
        """Prompt token ids per caption: [bos] caption BPE ``<boi>``; None or '' gives
        the unconditional prompt [bos] ``<boi>`` (the training-time caption drop)."""
        bos = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
        texts = [c or '' for c in captions]
        encoded = self.tokenizer(texts, add_special_tokens=False)['input_ids'] if texts else []
        return [bos + ids[:self.max_caption_tokens] + [self.boi_id] for ids in encoded]

    def drop_captions(self, captions):
        """Each caption replaced by None with probability ``uncond_prob`` (global torch RNG,
        which the runner seeds per rank and restores on resume)."""
        drop = (torch.rand(len(captions)) < self.uncond_prob).tolist()
        return [None if d else c for c, d in zip(captions, drop)]

    def build_inputs(self, prompts, visual_ids):
        """Training rows: input ids, position ids and the mask of visual-token positions,
        each [R, L]. Samples are padded one per row, or packed into rows of at most
        ``pack_length`` tokens; positions restart at 0 for every sample and for the
        padding tail, so HF attention keeps samples apart without an attention mask."""
        vis = (visual_ids.to('cpu').long() + self.text_vocab).tolist()
        seqs = [p + v + [self.eoi_id] for p, v in zip(prompts, vis)]
        rows = []
        for k, seq in enumerate(seqs):
            if self.pack_length and rows and \
                    sum(len(seqs[j]) for j in rows[-1]) + len(seq) <= self.pack_length:
                rows[-1].append(k)
            else:
                rows.append([k])
        width = max(sum(len(seqs[j]) for j in row) for row in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        target = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, row in enumerate(rows):
            start = 0
            for k in row:
                n, n_prompt = len(seqs[k]), len(prompts[k])
                ids[r, start:start + n] = torch.tensor(seqs[k])
                pos[r, start:start + n] = torch.arange(n)
                target[r, start + n_prompt:start + n - 1] = True
                start += n
            pos[r, start:] = torch.arange(width - start)
        return ids, pos, target

    def image_reply_ids(self, global_ids):
        """What the LLM emits for an image, as LLM ids [B, h*w + 2]: ``<boi>``, the visual
        tokens of ``global_ids`` [B, h*w], ``<eoi>`` (the sequence ends there)."""
        global_ids = global_ids.long()
        boi = global_ids.new_full((global_ids.shape[0], 1), self.boi_id)
        return torch.cat([boi, global_ids + self.text_vocab, boi + 1], dim=1)

    # -------------------------------------------------------------- training
    @torch.no_grad()
    def encode_images(self, images):
        """Images [B,3,H,W] in [-1,1] -> global visual ids [B, h*w] (frozen tokenizer)."""
        if self.image_tokenizer is None:
            raise RuntimeError(f'{type(self).__name__} has no image_tokenizer: train on '
                               "pre-tokenised data (batches with 'visual_ids', "
                               'tools/pretokenize.py) or set model.image_tokenizer')
        return self.image_tokenizer.encode(images)

    def generation_loss(self, batch):
        """Visual-token cross-entropy of a batch of ``text`` with ``visual_ids`` (or
        ``image``, tokenised here), captions dropped at ``uncond_prob``."""
        visual_ids = batch.get('visual_ids')
        if visual_ids is None:
            visual_ids = self.encode_images(batch['image'])
        captions = self.drop_captions(list(batch['text']))
        ids, pos, target = self.build_inputs(self.caption_prompt_ids(captions), visual_ids)
        device = self.llm.device
        ids, pos, target = ids.to(device), pos.to(device), target.to(device)
        hidden = self.llm.model(input_ids=ids, position_ids=pos, use_cache=False).last_hidden_state
        # the hidden state at t predicts token t + 1
        select = target[:, 1:]
        loss = self.visual_head.loss(hidden[:, :-1][select], ids[:, 1:][select] - self.text_vocab)
        uncond = sum(c is None for c in captions) / len(captions)
        return {'loss': loss, 'uncond_fraction': uncond}

    # ------------------------------------------------------------- inference
    def decode_images(self, global_ids):
        """Global visual ids [B, h*w] -> images [B,3,H,W] in [-1,1] (frozen tokenizer)."""
        if self.image_tokenizer is None:
            raise RuntimeError(f'{type(self).__name__} has no image_tokenizer to decode with')
        return self.image_tokenizer.decode(global_ids.to(self.llm.device)).float().clamp(-1, 1)

    def sampler(self, batch):
        """The (reused) fast sampler for up to ``batch`` prompts."""
        from unimm.inference.sampler import CFGSampler
        if self._sampler is None or self._sampler.max_batch < batch or \
                self._sampler.device != self.llm.device:
            self._sampler = CFGSampler(self, max_batch=batch,
                                       max_prompt_len=self.max_caption_tokens + 2)
        return self._sampler

    @torch.no_grad()
    def generate_ids(self, captions, cfg_scale=4.0, cfg_schedule='constant', temperature=1.0,
                     top_k=0, top_p=1.0, seed=0, batch_size=None, progress=None,
                     jacobi_window=None):
        """Global visual ids [B, h*w] for ``captions`` in batches of ``batch_size`` (default:
        all at once); the batch starting at caption k is drawn with seed ``seed + k``.
        ``cfg_scale=1`` samples without guidance (no unconditional rows).
        ``progress(done, total)`` counts the token positions drawn over all batches.
        ``jacobi_window=W``: speculative Jacobi decoding (`CFGSampler.generate`), one
        caption at a time (batch size 1 whatever ``batch_size``). ``generation_passes``
        is then the number of forward passes the call ran."""
        if jacobi_window is not None:
            batch_size = 1
        batch_size = batch_size or len(captions)
        sampler = self.sampler(min(batch_size, len(captions)))
        starts = range(0, len(captions), batch_size)
        total = len(starts) * self.num_image_tokens
        out, passes = [], 0
        for b, k in enumerate(starts):
            chunk = list(captions[k:k + batch_size])
            uncond = None if cfg_scale == 1 else self.caption_prompt_ids([None] * len(chunk))
            report = None if progress is None else \
                (lambda step, _, done=b * self.num_image_tokens: progress(done + step, total))
            out.append(sampler.generate(
                self.caption_prompt_ids(chunk), uncond, cfg_scale=cfg_scale,
                cfg_schedule=cfg_schedule, temperature=temperature, top_k=top_k, top_p=top_p,
                seed=seed + k, progress=report, jacobi_window=jacobi_window))
            passes += sampler.last_passes
        self.generation_passes = passes
        return torch.cat(out)

    def generate_images(self, captions, **sampling):
        """Images [B,3,H,W] in [-1,1] for ``captions``; ``sampling``: see generate_ids."""
        return self.decode_images(self.generate_ids(captions, **sampling))

    # ---------------------------------------------------------------- saving
    def export_config(self):
        cfg = super().export_config()
        num_semantic, sub_codes = self.factorization or (None, None)
        cfg.update(llm=self.LLM_FOLDER, tokenizer=None, text_vocab=self.text_vocab,
                   num_visual=self.num_visual, num_semantic=num_semantic, sub_codes=sub_codes,
                   num_image_tokens=self.num_image_tokens,
                   image_tokenizer=self.TOKENIZER_FOLDER if self.image_tokenizer else None)
        return cfg

    def save_parts(self, folder, state):
        """``llm/`` (HF model + text tokenizer) and ``image_tokenizer/`` (the frozen
        export, copied byte for byte)."""
        llm_dir = os.path.join(folder, self.LLM_FOLDER)
        self.llm.save_pretrained(llm_dir, state_dict=sub_state(state, 'llm.'))
        self.tokenizer.save_pretrained(llm_dir)
        if self.image_tokenizer is not None:
            target = os.path.join(folder, self.TOKENIZER_FOLDER)
            if os.path.abspath(target) != os.path.abspath(self._image_tokenizer_folder):
                shutil.copytree(self._image_tokenizer_folder, target, dirs_exist_ok=True)

    @classmethod
    def resolve_config(cls, cfg, folder):
        cfg['llm'] = os.path.join(folder, cls.LLM_FOLDER)
        if cfg.get('image_tokenizer'):
            cfg['image_tokenizer'] = os.path.join(folder, cls.TOKENIZER_FOLDER)


@MODELS.register_module()
class GenerationMLLM(VisualVocabularyMixin, PretrainedMixin, nn.Module):
    """Caption -> image tokens with an HF causal LM (see the module docstring).

    Args:
        llm: HF model folder, or an architecture dict for random weights (then give
            ``tokenizer``).
        image_tokenizer: folder of the frozen `ImageTokenizer` export; None for
            pre-tokenised training and benchmarks (then give ``num_visual`` and
            ``num_image_tokens``; decoding images is unavailable).
        num_visual, num_image_tokens: the tokenizer's ``vocab_size`` and ``num_tokens``.
        num_semantic, sub_codes: its ``factorization`` (K, m), if any; they alone give
            ``num_visual`` = K * m.
        tokenizer: the text tokenizer's folder (default: ``llm``).
        visual_head: ``dict(type='FlatVisualHead')`` (the LLM's head, visual rows) or
            ``dict(type='FactorizedVisualHead')`` (needs the factorisation).
        text_vocab: rows of the LLM's embedding before the visual tokens; None: the
            loaded LLM's (set in exports, whose LLM is already resized).
        uncond_prob: probability of training a sample with the unconditional prompt.
        max_caption_tokens: captions are cut to this many BPE tokens.
        pack_length: None pads each sample to the batch's longest; an int packs samples
            into rows of at most that many tokens (position ids restart per sample, which
            makes HF attention block-diagonal).
    """

    def __init__(self, llm, image_tokenizer=None, tokenizer=None,
                 visual_head=dict(type='FlatVisualHead'), num_semantic=None, sub_codes=None,
                 num_image_tokens=None, text_vocab=None, uncond_prob=0.1,
                 max_caption_tokens=120, pack_length=None, attn_implementation='sdpa',
                 gradient_checkpointing=False, num_visual=None):
        super().__init__()
        from transformers import AutoTokenizer
        if isinstance(llm, dict) and tokenizer is None:
            raise ValueError('GenerationMLLM: an architecture dict as llm needs tokenizer=FOLDER')
        self.llm = load_llm(dict(llm) if isinstance(llm, dict) else llm, attn_implementation,
                            'GenerationMLLM.llm', LLM_HINT)
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or llm)
        self._init_visual_vocabulary(
            image_tokenizer, text_vocab, visual_head, uncond_prob, max_caption_tokens,
            pack_length, given_vocabulary(num_visual, num_semantic, sub_codes, num_image_tokens))
        if gradient_checkpointing:
            enable_gradient_checkpointing(self.llm)

    def prompt_ids(self, captions):
        """Generation prompts of ``captions`` (see `caption_prompt_ids`)."""
        return self.caption_prompt_ids(captions)

    def forward(self, batch):
        return self.generation_loss(batch)
