"""GenEval on the shapes world, scored exactly: the same prompt categories and rules as
GenEval, with the shapes scorer (``unimm.datasets.shapes.score_prompt``) reading objects
back from pixels instead of a detector. Also scores a random-token baseline (uniform
visual ids through the same decoder) as the floor a trained generator must clear."""
import json
import os
import time

import torch

from unimm.datasets.shapes import sample_geneval_prompts, score_prompt
from unimm.evaluation.geneval import generate_for_prompts, save_prompt_samples, summarize
from unimm.registry import METRICS

GENERATORS = ('model', 'random_tokens')


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


@METRICS.register_module()
class ShapesGenEvalEvaluator:
    """``n_per_tag`` prompts per GenEval category (``sample_geneval_prompts(seed)``),
    ``n_samples`` images each, scored per category; ``generator='random_tokens'`` scores
    the random-token baseline instead of the model. ``save_layout`` also writes the
    images in GenEval's folder layout under ``<work_dir>/<outdir>``. Reports sampling
    throughput (images/s and visual tokens/s, generation plus decoding)."""

    def __init__(self, n_per_tag=50, n_samples=4, batch_size=64, sampling=dict(cfg_scale=4.0),
                 seed=0, generator='model', save_layout=False, outdir='shapes_geneval'):
        if generator not in GENERATORS:
            raise ValueError(f'ShapesGenEvalEvaluator.generator: {generator!r} is not one of '
                             f'{GENERATORS}')
        self.specs = sample_geneval_prompts(seed, n_per_tag)
        self.n_samples, self.batch_size, self.sampling = n_samples, batch_size, dict(sampling)
        self.seed, self.generator = seed, generator
        self.save_layout, self.outdir = save_layout, outdir

    def _batches(self, model):
        if self.generator == 'model':
            yield from generate_for_prompts(model, [s['prompt'] for s in self.specs],
                                            self.n_samples, self.batch_size, self.sampling,
                                            self.seed)
            return
        rng = torch.Generator().manual_seed(self.seed)
        for p in range(len(self.specs)):
            yield p, 0, random_token_images(model, self.n_samples, rng)

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
