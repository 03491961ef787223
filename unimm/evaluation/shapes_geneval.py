"""GenEval on the shapes world, scored exactly: the same prompt categories and rules as
GenEval, with the shapes scorer (``unimm.datasets.shapes.score_prompt``) reading objects
back from pixels instead of a detector. Also scores two references: random tokens
(uniform visual ids through the same decoder: a generator that learned nothing; the
strict scorer fails the noise it decodes to, see ``parse_failures``) and
reconstructions (a correct scene for each prompt, rendered and passed through the image
tokenizer: the best that emitting this tokenizer's ids can score)."""
import json
import os
import time

import numpy as np
import torch

from unimm.datasets.shapes import render, sample_geneval_prompts, scene_from_prompt, score_prompt
from unimm.datasets.transforms import pil_to_tensor
from unimm.evaluation.geneval import generate_for_prompts, save_prompt_samples, summarize
from unimm.registry import METRICS

GENERATORS = ('model', 'random_tokens', 'reconstruction')


def score_images(specs, images):
    """Per-image records (tag, prompt, correct, reasons) for prompt specs and their images."""
    records = []
    for spec, image in zip(specs, images):
        scored = score_prompt(image, spec)
        records.append({'tag': spec['tag'], 'prompt': spec['prompt'],
                        'correct': scored['correct'], 'reasons': scored['reasons']})
    return records


def random_token_images(model, n, generator):
    """Decoded images of uniformly random global visual ids [n, h*w]."""
    ids = torch.randint(model.num_visual, (n, model.num_image_tokens), generator=generator)
    return model.decode_images(ids)


def reconstructed_images(model, spec, n, rng, resolution):
    """``n`` random scenes that satisfy ``spec``, rendered and tokenised then decoded."""
    images = torch.stack([pil_to_tensor(render(scene_from_prompt(spec, rng), resolution))
                          for _ in range(n)])
    return model.decode_images(model.encode_images(images.to(model.llm.device)))


@METRICS.register_module()
class ShapesGenEvalEvaluator:
    """``n_per_tag`` prompts per GenEval category (``sample_geneval_prompts(seed)``),
    ``n_samples`` images each, scored per category; ``generator='random_tokens'`` /
    ``'reconstruction'`` score the floor / the tokenizer's ceiling instead of the model
    (``resolution``: the rendered scenes' size, the tokenizer's input size). ``save_layout`` also writes the
    images in GenEval's folder layout under ``<work_dir>/<outdir>``. Reports sampling
    throughput (images/s and visual tokens/s, generation plus decoding)."""

    def __init__(self, n_per_tag=50, n_samples=4, batch_size=64, sampling=dict(cfg_scale=4.0),
                 seed=0, generator='model', save_layout=False, outdir='shapes_geneval',
                 resolution=64):
        if generator not in GENERATORS:
            raise ValueError(f'ShapesGenEvalEvaluator.generator: {generator!r} is not one of '
                             f'{GENERATORS}')
        self.specs = sample_geneval_prompts(seed, n_per_tag)
        self.n_samples, self.batch_size, self.sampling = n_samples, batch_size, dict(sampling)
        self.seed, self.generator = seed, generator
        self.save_layout, self.outdir = save_layout, outdir
        self.resolution = resolution

    def _batches(self, model):
        if self.generator == 'model':
            yield from generate_for_prompts(model, [s['prompt'] for s in self.specs],
                                            self.n_samples, self.batch_size, self.sampling,
                                            self.seed)
            return
        if self.generator == 'random_tokens':
            rng = torch.Generator().manual_seed(self.seed)
            for p in range(len(self.specs)):
                yield p, 0, random_token_images(model, self.n_samples, rng)
            return
        rng = np.random.default_rng(self.seed)
        for p, spec in enumerate(self.specs):
            yield p, 0, reconstructed_images(model, spec, self.n_samples, rng, self.resolution)

    @torch.no_grad()
    def __call__(self, model, work_dir=None):
        records, seconds = [], 0.0
        batches = self._batches(model)
        while True:
            start = time.time()  # time generation + decoding only, not scoring
            batch = next(batches, None)
            seconds += time.time() - start
            if batch is None:
                break
            p, s, images = batch
            records += score_images([self.specs[p]] * len(images), images.cpu())
            if self.save_layout and work_dir:
                save_prompt_samples(os.path.join(work_dir, self.outdir), p,
                                    json.dumps(self.specs[p]), images, first_sample=s)
        result = summarize(records)
        result.update(generator=self.generator, sampling=self.sampling,
                      generation_s=round(seconds, 1),
                      images_per_s=round(len(records) / seconds, 2),
                      tokens_per_s=round(len(records) * model.num_image_tokens / seconds, 1))
        return result
