"""Captions to images in one call (`generate_images`), and the files of a generation run
(`save_samples`: a PNG per image, a grid, and a JSON line per image with its prompt, seed
and settings), which ``tools/generate.py`` writes."""
import json
import os
import re

import torch
from PIL import Image

from unimm.inference.sampler import SCHEDULES


@torch.no_grad()
def generate_images(model, prompts, batch_size=8, seed=0, cfg_scale=4.0, cfg_schedule='constant',
                    temperature=1.0, top_k=0, top_p=1.0, progress=None, jacobi_window=None):
    """Images [N, 3, H, W] in [-1, 1], on the CPU, for the captions ``prompts`` (None or
    '': unconditional) from a text-to-image or unified model (`GenerationMLLM`,
    `UnifiedMLLM`), drawn by its `CFGSampler` with classifier-free guidance (``cfg_scale``
    1: none) in batches of ``batch_size``. The batch starting at prompt k is drawn with
    seed ``seed + k`` (as ``model.generate_ids``), so the same prompts, batch size and seed
    give the same images. ``progress(done, total)`` is called after each batch with the
    number of images finished. ``jacobi_window=W`` decodes by speculative Jacobi decoding
    (up to W tokens a forward pass, the same distribution; docs/generation.md), each
    prompt alone (batch size 1 whatever ``batch_size``), prompt k with seed ``seed + k``."""
    if jacobi_window is not None:
        batch_size = 1
    prompts = list(prompts)
    if batch_size < 1:
        raise ValueError(f'batch_size must be at least 1, not {batch_size}')
    images = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        ids = model.generate_ids(chunk, cfg_scale=cfg_scale, cfg_schedule=cfg_schedule,
                                 temperature=temperature, top_k=top_k, top_p=top_p,
                                 seed=seed + start, batch_size=len(chunk),
                                 jacobi_window=jacobi_window)
        images.append(model.decode_images(ids).cpu())
        if progress is not None:
            progress(start + len(chunk), len(prompts))
    return torch.cat(images) if images else torch.empty(0, 3, 0, 0)


def sample_records(prompts, batch_size=8, seed=0, cfg_scale=4.0, cfg_schedule='constant',
                   temperature=1.0, top_k=0, top_p=1.0, jacobi_window=None):
    """One record per image of `generate_images` with the same arguments: its index and
    prompt, the seed of its batch and its row in that batch, and the sampling settings
    (what it takes to draw the image again)."""
    if cfg_schedule not in SCHEDULES:
        raise ValueError(f'cfg_schedule {cfg_schedule!r} is not one of {SCHEDULES}')
    if jacobi_window is not None:
        batch_size = 1  # as generate_images draws them
    settings = dict(cfg_scale=cfg_scale, cfg_schedule=cfg_schedule, temperature=temperature,
                    top_k=top_k, top_p=top_p, batch_size=batch_size)
    if jacobi_window is not None:
        settings['jacobi_window'] = jacobi_window
    return [dict(index=i, prompt=prompt or '', seed=seed + i - i % batch_size,
                 batch_row=i % batch_size, **settings) for i, prompt in enumerate(prompts)]


def _slug(prompt):
    return re.sub(r'[^a-z0-9]+', '_', (prompt or '').lower()).strip('_')[:60] or 'unconditional'


def save_samples(images, records, out, grid_columns=8):
    """Write ``images`` ([N, 3, H, W] in [-1, 1]) to the folder ``out``: ``<prompt
    slug>_<k>.png`` each (k counts the images of a slug), ``grid.png`` (``grid_columns``
    a row, in order) and ``samples.jsonl`` (each record of `sample_records` with its
    file name). Returns the PNG paths."""
    from torchvision.utils import make_grid

    from unimm.evaluation.recon import to_uint8
    if len(images) != len(records):
        raise ValueError(f'{len(images)} images but {len(records)} records')
    os.makedirs(out, exist_ok=True)
    arrays, paths, seen = to_uint8(images), [], {}
    with open(os.path.join(out, 'samples.jsonl'), 'w') as f:
        for array, record in zip(arrays.numpy(), records):
            slug = _slug(record['prompt'])
            name = f'{slug}_{seen.setdefault(slug, 0)}.png'
            seen[slug] += 1
            paths.append(os.path.join(out, name))
            Image.fromarray(array).save(paths[-1])
            f.write(json.dumps(dict(record, file=name)) + '\n')
    grid = make_grid(arrays.permute(0, 3, 1, 2), nrow=grid_columns, padding=2, pad_value=255)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(os.path.join(out, 'grid.png'))
    return paths
