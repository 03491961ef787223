"""LLaVA-format instruction data: the pretraining captions (LLaVA-Pretrain-558K) and the
instruction mix (LLaVA-v1.5-mix-665K), plus the shapes world written the same way.

A record is ``{'id', 'image' (optional), 'conversations': [{'from', 'value'}, ...]}``
with ``<image>`` in a human turn where the image goes. An item is ``input_ids`` and
``labels`` (answer tokens only, see ``conversation.py``), with the ``<image>`` expanded
to ``num_image_tokens`` placeholders, and ``image`` [3, S, S] in [-1, 1] when the record
has one. Over-long items are truncated (counted, with a warning), never a crash."""
import json
import logging
import os

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from unimm.datasets.image_datasets import load_image
from unimm.datasets.shapes import ShapesWorld
from unimm.datasets.transforms import pil_to_tensor, to_rgb
from unimm.models.mllm.conversation import (IGNORE_INDEX, IMAGE_TOKEN, IMAGE_TOKEN_INDEX,
                                            get_template, tokenize_conversation)
from unimm.models.mllm.llm import load_text_tokenizer
from unimm.registry import DATASETS

logger = logging.getLogger(__name__)
ASPECT_MODES = ('pad', 'stretch')


def image_count(conversation):
    return sum(turn['value'].count(IMAGE_TOKEN) for turn in conversation)


def pad_to_square(img, colour):
    """LLaVA-1.5's 'pad' aspect mode: centre the image on a square canvas."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    canvas = Image.new('RGB', (side, side), colour)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


def image_input(img, size, colour=(127, 127, 127)):
    """A PIL image as an MLLM's input at inference: RGB, padded to a square (LLaVA-1.5's
    'pad'), resized bicubically to ``size``; [3, size, size] in [-1, 1]."""
    img = pad_to_square(to_rgb(img), colour).resize((size, size), Image.BICUBIC)
    return pil_to_tensor(img)


@DATASETS.register_module()
class LLaVADataset(Dataset):
    """LLaVA JSON (a list of records) with images under ``image_folder``.

    Args:
        data_path: the JSON file (e.g. ``blip_laion_cc_sbu_558k.json``,
            ``llava_v1_5_mix665k.json``).
        image_folder: root that records' ``image`` paths are relative to.
        tokenizer: local folder of the LLM's tokenizer (usually the LLM folder itself).
        template: a registered conversation template (``vicuna_v1``, ``plain``, ``chatml``).
        num_image_tokens: features the vision side gives per image (64 in the demo, 576
            for LLaVA-1.5's CLIP-L/336); must match the model's.
        image_size: side of the square image fed to the vision tokenizer.
        max_length: longest item in tokens, image placeholders included.
        image_aspect: ``'pad'`` (LLaVA-1.5: pad to square with ``pad_colour``) or
            ``'stretch'``.
    """

    def __init__(self, data_path, image_folder, tokenizer, template='vicuna_v1',
                 num_image_tokens=576, image_size=336, max_length=2048, image_aspect='pad',
                 pad_colour=(127, 127, 127)):
        with open(data_path) as f:
            records = json.load(f)
        self._setup(records, tokenizer, template, num_image_tokens, image_size, max_length)
        if image_aspect not in ASPECT_MODES:
            raise ValueError(f'LLaVADataset.image_aspect must be one of {ASPECT_MODES}, '
                             f'got {image_aspect!r}')
        self.image_folder = image_folder
        self.image_aspect, self.pad_colour = image_aspect, tuple(pad_colour)

    def _setup(self, records, tokenizer, template, num_image_tokens, image_size, max_length):
        """Shared by subclasses: check the records, load the tokenizer and template."""
        for i, rec in enumerate(records):
            want = 1 if rec.get('image') is not None else 0
            got = image_count(rec['conversations'])
            if got != want:
                raise ValueError(f'record {i} (id {rec.get("id")!r}) has {got} {IMAGE_TOKEN} '
                                 f'tags in its conversations but {want} image(s); each image '
                                 f'needs exactly one {IMAGE_TOKEN} where its features go')
        self.records = records
        self.tokenizer = load_text_tokenizer(tokenizer, f'{type(self).__name__}.tokenizer')
        self.template = get_template(template)
        self.num_image_tokens = int(num_image_tokens)
        self.image_size = int(image_size)
        self.max_length = int(max_length)
        self.num_truncated = 0
        self._lengths = None

    def __len__(self):
        return len(self.records)

    @property
    def lengths(self):
        """Approximate lengths (words + image tokens) for length-grouped batching; cheap
        enough for 665K records, no tokenisation."""
        if self._lengths is None:
            self._lengths = [sum(len(t['value'].split()) for t in rec['conversations']) +
                             (self.num_image_tokens if rec.get('image') is not None else 0)
                             for rec in self.records]
        return self._lengths

    def load_image(self, record):
        """The record's image as a [-1, 1] tensor, or None if it cannot be read."""
        path = os.path.join(self.image_folder, record['image'])
        img = load_image(path, path)
        if img is None:
            return None
        img = to_rgb(img)
        if self.image_aspect == 'pad':
            img = pad_to_square(img, self.pad_colour)
        return pil_to_tensor(img.resize((self.image_size, self.image_size), Image.BICUBIC))

    def __getitem__(self, index):
        record = self.records[index]
        item = {}
        if record.get('image') is not None:
            item['image'] = self.load_image(record)
            if item['image'] is None:
                return None
        input_ids, labels = tokenize_conversation(self.tokenizer, self.template,
                                                  record['conversations'],
                                                  self.num_image_tokens)
        item['truncated'] = len(input_ids) > self.max_length
        if item['truncated']:
            self._warn_truncated(index, len(input_ids))
            input_ids, labels = input_ids[:self.max_length], labels[:self.max_length]
            if 0 < input_ids.count(IMAGE_TOKEN_INDEX) < self.num_image_tokens * image_count(
                    record['conversations']):
                return None  # the cut went through an image: nothing sensible to train on
        item['input_ids'] = torch.tensor(input_ids)
        item['labels'] = torch.tensor(labels)
        return item

    def _warn_truncated(self, index, length):
        self.num_truncated += 1
        n = self.num_truncated
        if n & (n - 1) == 0:  # 1st, 2nd, 4th, 8th, ... in this process
            logger.warning('%s: item %d has %d tokens > max_length %d: truncated (%d so far in '
                           'this process; a cut through an image drops the item)',
                           type(self).__name__, index, length, self.max_length, n)

    def collate_fn(self, samples):
        """Right-padded batch: input_ids, labels (IGNORE_INDEX on padding), attention_mask,
        images of the samples that have one (in sample order), and the counts
        ``num_skipped`` (unreadable or dropped) and ``num_truncated``."""
        kept = [s for s in samples if s is not None]
        batch = {'num_skipped': len(samples) - len(kept)}
        if not kept:
            return batch
        width = max(len(s['input_ids']) for s in kept)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(kept), width), pad, dtype=torch.long)
        labels = torch.full((len(kept), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(kept), width), dtype=torch.long)
        for row, s in enumerate(kept):
            n = len(s['input_ids'])
            input_ids[row, :n], labels[row, :n], mask[row, :n] = s['input_ids'], s['labels'], 1
        batch.update(input_ids=input_ids, labels=labels, attention_mask=mask,
                     num_truncated=torch.tensor(sum(s['truncated'] for s in kept)))
        images = [s['image'] for s in kept if 'image' in s]
        if images:
            batch['images'] = torch.stack(images)
        return batch


@DATASETS.register_module()
class ShapesLLaVADataset(LLaVADataset):
    """The shapes world as LLaVA records, rendered on the fly (no files).

    ``kind='caption'`` gives LLaVA-Pretrain-style records (an instruction, the caption as
    the answer); ``kind='vqa'`` multi-turn conversations like the VQA parts of LLaVA-665K:
    a scene's VQA pairs in a per-scene shuffled order, ``turns`` per conversation. Record
    ``image`` is the scene index; ``texture`` uses the textured world (pass its resolution,
    e.g. 128). ``unimm.apis.shapes_to_llava`` writes the same records."""

    KINDS = ('caption', 'vqa')
    CAPTION_PROMPT = 'Describe the image briefly.'

    def __init__(self, tokenizer, kind='vqa', seed=0, resolution=64, start=0, length=10000,
                 template='vicuna_v1', num_image_tokens=64, max_length=512, turns=8,
                 answer_prompt='', texture=False):
        if kind not in self.KINDS:
            raise ValueError(f'ShapesLLaVADataset.kind must be one of {self.KINDS}, got {kind!r}')
        self.world = ShapesWorld(seed, resolution, texture=texture)
        records = [rec for i in range(length)
                   for rec in shapes_records(self.world, start + i, kind, turns, answer_prompt)]
        self._setup(records, tokenizer, template, num_image_tokens, resolution, max_length)

    def load_image(self, record):
        return pil_to_tensor(self.world.image(record['image']))


def shapes_records(world, index, kind, turns=8, answer_prompt=''):
    """Scene ``index`` of ``world`` as LLaVA records (``image`` is the scene index)."""
    if kind == 'caption':
        chunks = [[(ShapesLLaVADataset.CAPTION_PROMPT, world.caption(index))]]
    else:
        pairs = world.vqa(index)
        order = np.random.default_rng([world.seed, index, 2]).permutation(len(pairs))
        suffix = f'\n{answer_prompt}' if answer_prompt else ''
        qa = [(pairs[k][0] + suffix, pairs[k][1]) for k in order]
        chunks = [qa[k:k + turns] for k in range(0, len(qa), turns)]
    records = []
    for c, chunk in enumerate(chunks):
        conversations = []
        for k, (question, answer) in enumerate(chunk):
            conversations += [{'from': 'human', 'value': f'{IMAGE_TOKEN}\n{question}' if k == 0
                               else question}, {'from': 'gpt', 'value': answer}]
        records.append({'id': f'shapes_{kind}_{index}_{c}', 'image': index,
                        'conversations': conversations})
    return records
