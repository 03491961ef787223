"""UnderstandingMLLM: the LLaVA-1.5 recipe on a unimm vision side.

image -> frozen vision features (SemHiTok's quantised semantic ‖ texture features, or a
continuous encoder's) -> projector -> written into the LLM's input embeddings where the
prompt has ``<image>`` -> any Hugging Face causal LM loaded from a local folder.
Phase 1 trains the projector only; phase 2 (``train_llm=True``) projector + LLM.

`ConversationMixin` holds the conversation side (image embeddings at the placeholders,
answer-only loss, batched generation, log-likelihoods) for any model with an ``llm``;
`UnifiedMLLM` (unified.py) reuses it next to the generation path."""
import os
import threading

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import LogitsProcessor, LogitsProcessorList

from unimm.models.base import PretrainedMixin, sub_state
from unimm.models.mllm.conversation import (IGNORE_INDEX, IMAGE_TOKEN, IMAGE_TOKEN_INDEX,
                                            get_template, tokenize_conversation)
from unimm.models.mllm.features import load_unimm_folder
from unimm.models.mllm.llm import enable_gradient_checkpointing, load_llm, load_text_tokenizer
from unimm.registry import MODELS

PROJECTOR_WEIGHTS = 'projector.safetensors'


LLM_HINT = ('Download the LLM there (e.g. `huggingface-cli download lmsys/vicuna-7b-v1.5 '
            '--local-dir checkpoints/vicuna-7b-v1.5`) or, for the demo, run '
            '`python tools/make_tiny_lm.py --arch llama --out work_dirs/tiny_llama`')


def load_projector(projector, folder, what):
    """Load ``projector.safetensors`` of ``folder`` (a phase-1 export) into ``projector``."""
    path = os.path.join(folder, PROJECTOR_WEIGHTS)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{what}: {path} not found; give the phase-1 export folder '
                                '(<work_dir>/export)')
    projector.load_state_dict(load_file(path))


class TextOnlyLogits(LogitsProcessor):
    """Answers are text: ids from ``text_vocab`` on (a unified model's visual tokens,
    ``<boi>``, ``<eoi>``) get -inf logits while decoding an answer."""

    def __init__(self, text_vocab):
        self.text_vocab = text_vocab

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.text_vocab:] = float('-inf')
        return scores


class ConversationMixin:
    """Conversations with images in, text out, on an HF causal LM (LLaVA style).

    The host provides ``llm``, ``template``, ``text_tokenizer`` and, for the default
    projector path, ``vision`` and ``projector``; it may override `image_embeddings`,
    `image_input_tokens` and ``answer_vocab`` (answers are decoded and scored over the
    first ``answer_vocab`` ids only; None: the whole vocabulary)."""

    answer_vocab = None

    # ---------------------------------------------------------------- embedding
    @property
    def image_input_tokens(self):
        """Embeddings one image occupies in a prompt (its ``<image>`` placeholders)."""
        return self.vision.num_tokens

    @property
    def image_size(self):
        """Side of the square image the vision side takes."""
        return self.vision.image_size

    def image_embeddings(self, images):
        """[M, 3, H, W] -> projected features [M, N, hidden]."""
        with torch.no_grad():
            feats = self.vision(images)
        return self.projector(feats.to(self.projector[0].weight.dtype))

    def embed(self, input_ids, images=None):
        """Token embeddings with the image features written, image by image in row-major
        order, over the ``IMAGE_TOKEN_INDEX`` placeholders."""
        where = input_ids == IMAGE_TOKEN_INDEX
        embeds = self.llm.get_input_embeddings()(input_ids.masked_fill(where, 0))
        n_slots = int(where.sum())
        n_images = 0 if images is None else images.shape[0]
        if n_slots != n_images * self.image_input_tokens:
            raise ValueError(f'{n_slots} image placeholder tokens for {n_images} image(s) of '
                             f'{self.image_input_tokens} features each: every {IMAGE_TOKEN} must '
                             'be expanded to num_image_tokens placeholders (the dataset\'s '
                             'num_image_tokens must equal the vision side\'s) and have its image')
        if n_images:
            feats = self.image_embeddings(images).to(embeds.dtype)
            embeds = embeds.masked_scatter(where.unsqueeze(-1), feats)
        return embeds

    # ---------------------------------------------------------------- training
    def conversation_loss(self, batch):
        """Answer-token cross-entropy of a LLaVA batch (``input_ids``, ``labels``,
        ``attention_mask``, ``images``), plus the logged counts."""
        labels = batch['labels']
        embeds = self.embed(batch['input_ids'], batch.get('images'))
        n_answer = (labels[:, 1:] != IGNORE_INDEX).sum()
        # a batch whose answers were all truncated away gives loss 0, not NaN
        out = self.llm(inputs_embeds=embeds, attention_mask=batch['attention_mask'],
                       labels=labels, num_items_in_batch=n_answer.clamp(min=1), use_cache=False)
        logged = {'loss': out.loss, 'answer_tokens': n_answer.float()}
        if 'num_truncated' in batch:
            logged['truncated'] = batch['num_truncated'].float()
        return logged

    # ---------------------------------------------------------------- inference
    def conversation_ids(self, conversation):
        """Token ids of a conversation that ends with a human turn (the answer is open)."""
        ids, _ = tokenize_conversation(self.text_tokenizer, self.template, conversation,
                                       self.image_input_tokens)
        return ids

    @staticmethod
    def single_turn(question, with_image=True):
        return [{'from': 'human', 'value': f'{IMAGE_TOKEN}\n{question}' if with_image
                 else question}]

    def _device(self):
        return self.llm.get_input_embeddings().weight.device

    def _image_dtype(self):
        return self.llm.get_input_embeddings().weight.dtype

    def _batch(self, rows, pad_left):
        """Pad id lists into input_ids / attention_mask (left padding for generation)."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.text_tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            sl = slice(width - len(r), width) if pad_left else slice(0, len(r))
            ids[i, sl], mask[i, sl] = torch.tensor(r), 1
        return ids.to(self._device()), mask.to(self._device())

    def _images(self, images):
        return None if images is None else images.to(self._device(), self._image_dtype())

    def _text_generation_kwargs(self):
        """Extra ``llm.generate`` arguments: the answer-vocabulary mask, if any."""
        if self.answer_vocab is None:
            return {}
        return {'logits_processor': LogitsProcessorList([TextOnlyLogits(self.answer_vocab)])}

    @torch.no_grad()
    def generate(self, conversations, images=None, max_new_tokens=64, streamer=None,
                 **generate_kwargs):
        """Answers (strings) to a batch of conversations ending with a human turn; images
        [M, 3, H, W] in [-1, 1] in the order of their ``<image>`` tags. Greedy unless
        ``do_sample=True`` is passed; ``streamer`` (e.g. ``TextIteratorStreamer``) streams
        a batch of one."""
        tok = self.text_tokenizer
        ids, mask = self._batch([self.conversation_ids(c) for c in conversations], pad_left=True)
        embeds = self.embed(ids, self._images(images))
        stop = self.template.stop_text(tok.eos_token)
        kwargs = dict(do_sample=False, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **self._text_generation_kwargs())
        if stop != tok.eos_token:
            kwargs.update(stop_strings=[stop], tokenizer=tok)
        kwargs.update(generate_kwargs)
        out = self.llm.generate(inputs_embeds=embeds, attention_mask=mask,
                                max_new_tokens=max_new_tokens, streamer=streamer, **kwargs)
        texts = tok.batch_decode(out, skip_special_tokens=True)
        return [t.split(stop)[0].strip() if stop else t.strip() for t in texts]

    def stream_answer(self, conversation, images=None, max_new_tokens=64, **generate_kwargs):
        """Yield the answer to one conversation as it grows (`generate` runs in a thread
        and feeds a ``TextIteratorStreamer``), cut at the template's stop text and stripped
        as `generate` cuts it; the last value yielded is exactly `generate`'s answer."""
        from transformers import TextIteratorStreamer
        streamer = TextIteratorStreamer(self.text_tokenizer, skip_prompt=True,
                                        skip_special_tokens=True)
        result = {}

        def run():
            try:
                result['answer'] = self.generate([conversation], images, streamer=streamer,
                                                 max_new_tokens=max_new_tokens,
                                                 **generate_kwargs)[0]
            except Exception as error:  # re-raised in the caller's thread
                result['error'] = error
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        stop = self.template.stop_text(self.text_tokenizer.eos_token)
        text, shown = '', ''
        for piece in streamer:
            text += piece
            partial = (text.split(stop)[0] if stop else text).strip()
            if partial != shown:
                shown = partial
                yield partial
        worker.join()
        if 'error' in result:
            raise result['error']
        if result['answer'] != shown or not result['answer']:
            yield result['answer']

    @torch.no_grad()
    def loglikelihood(self, conversations, answers, images=None):
        """(log p(answer + its end marker | conversation), is_greedy) per row: the answer
        scored through the template as it is trained, over the answer vocabulary that
        `generate` decodes from."""
        rows, targets = [], []
        for conv, answer in zip(conversations, answers):
            ids, labels = tokenize_conversation(
                self.text_tokenizer, self.template,
                list(conv) + [{'from': 'gpt', 'value': answer}], self.image_input_tokens)
            n_prompt = len(self.conversation_ids(conv))
            rows.append(ids)
            targets.append([lab if k >= n_prompt else IGNORE_INDEX
                            for k, lab in enumerate(labels)])
        ids, mask = self._batch(rows, pad_left=False)
        labels, _ = self._batch(targets, pad_left=False)
        labels = labels.masked_fill(mask == 0, IGNORE_INDEX)
        logits = self.llm(inputs_embeds=self.embed(ids, self._images(images)),
                          attention_mask=mask).logits[:, :-1, :self.answer_vocab].float()
        labels = labels[:, 1:]
        valid = labels != IGNORE_INDEX
        logp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        total = (logp * valid).sum(-1)
        greedy = ((logits.argmax(-1) == labels) | ~valid).all(-1)
        return [(float(t), bool(g)) for t, g in zip(total, greedy)]


@MODELS.register_module()
class UnderstandingMLLM(ConversationMixin, PretrainedMixin, nn.Module):
    """Export folder: ``llm/`` (HF model + tokenizer), ``vision/`` (the adapter's own
    folder), ``projector.safetensors`` and ``config.json`` (see `PretrainedMixin`).

    Args:
        vision: a feature adapter's registry config (``TokenizerFeatures``,
            ``ContinuousFeatures``) or the folder its ``save_pretrained`` wrote.
        llm: local HF causal-LM folder (Vicuna, LLaMA, Qwen2, ...) or a config dict for a
            randomly initialised one.
        projector: registry config without the dims (filled from vision and LLM).
        tokenizer: the LLM's tokenizer folder; default: the ``llm`` folder.
        template: conversation template (``vicuna_v1``, ``chatml``, ...; see
            ``unimm.models.mllm.conversation``); must match the training data's.
        train_llm: phase 2 (projector + LLM) instead of phase 1 (projector only).
        projector_from: a folder holding ``projector.safetensors`` (the phase-1 export).
        gradient_checkpointing: HF gradient checkpointing in the LLM.
    """

    LLM_FOLDER, VISION_FOLDER = 'llm', 'vision'
    FOLDER_PREFIXES = ('llm.', 'vision.')
    WEIGHTS_NAME, WEIGHTS_PREFIX = PROJECTOR_WEIGHTS, 'projector.'

    def __init__(self, vision, llm, projector=dict(type='MLPProjector', kind='mlp2x_gelu'),
                 tokenizer=None, template='vicuna_v1', train_llm=False, projector_from=None,
                 gradient_checkpointing=False, attn_implementation='sdpa'):
        super().__init__()
        self.vision = load_unimm_folder(vision, 'UnderstandingMLLM.vision') \
            if isinstance(vision, str) else MODELS.build(vision, path='vision')
        self.llm = load_llm(llm, attn_implementation, 'UnderstandingMLLM.llm', LLM_HINT)
        self.projector = MODELS.build(dict(projector, in_dim=self.vision.out_dim,
                                           out_dim=self.llm.config.hidden_size),
                                      path='projector')
        self.template = get_template(template)
        self.tokenizer_path = tokenizer or (llm if isinstance(llm, str) else None)
        self._tokenizer = None
        self.train_llm = train_llm
        if projector_from:
            self.load_projector(projector_from)
        self.vision.requires_grad_(False)
        self.llm.requires_grad_(train_llm)
        if gradient_checkpointing:
            enable_gradient_checkpointing(self.llm)

    def train(self, mode=True):
        super().train(mode)
        self.llm.train(mode and self.train_llm)  # a frozen LLM stays in eval mode
        return self

    def load_projector(self, folder):
        load_projector(self.projector, folder, 'UnderstandingMLLM.projector_from')

    @property
    def text_tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_text_tokenizer(self.tokenizer_path,
                                                  'UnderstandingMLLM.tokenizer')
        return self._tokenizer

    @property
    def num_image_tokens(self):
        return self.image_input_tokens

    def _device(self):
        return self.projector[0].weight.device

    def _image_dtype(self):
        return self.projector[0].weight.dtype

    def forward(self, batch):
        return self.conversation_loss(batch)

    def prompt_ids(self, conversation):
        """Token ids of a conversation that ends with a human turn (`conversation_ids`)."""
        return self.conversation_ids(conversation)

    # ---------------------------------------------------------------- saving
    def export_config(self):
        cfg = super().export_config()
        cfg.update(vision=self.VISION_FOLDER, llm=self.LLM_FOLDER, projector_from=None,
                   tokenizer=self.LLM_FOLDER if self.tokenizer_path else None)
        return cfg

    def save_parts(self, folder, state):
        """``llm/`` (HF model + tokenizer) and ``vision/`` (the adapter's own folder)."""
        llm_dir = os.path.join(folder, self.LLM_FOLDER)
        self.llm.save_pretrained(llm_dir, state_dict=sub_state(state, 'llm.'))
        if self.tokenizer_path:
            self.text_tokenizer.save_pretrained(llm_dir)
        self.vision.save_pretrained(os.path.join(folder, self.VISION_FOLDER),
                                    state_dict=sub_state(state, 'vision.'))

    @classmethod
    def resolve_config(cls, cfg, folder):
        cfg.update(vision=os.path.join(folder, cfg['vision']),
                   llm=os.path.join(folder, cfg['llm']), gradient_checkpointing=False)
        if cfg['tokenizer']:
            cfg['tokenizer'] = os.path.join(folder, cfg['tokenizer'])
