"""MJHQ-30K FID (Playground v2.5's benchmark): one image per prompt of ``meta_data.json``,
FID against the reference images, overall and per category.

Resize policy: FID is computed at the generator's resolution. Each reference image is
resized so its shorter side equals the generated side (PIL bicubic, antialiased), centre
cropped to a square, rounded to 8 bits; generated images are rounded to 8 bits as saved.
Both then go through the standard FID pipeline (``InceptionFeatures``: torch-fidelity's
InceptionV3, TF1 bilinear resize to 299 px, 2048-d pool features). Reference images at
1024 px are therefore not compared at 1024 px; say so when quoting the numbers.
"""
import json
import os
import time

import torch
from PIL import Image

from unimm.datasets.image_datasets import load_image
from unimm.datasets.transforms import ImageTransform
from unimm.evaluation.recon import to_uint8
from unimm.evaluation.recon_metrics import FIDAccumulator, InceptionFeatures
from unimm.registry import METRICS


def read_mjhq_meta(path, categories=None, n_per_category=None):
    """[(image id, category, prompt)] sorted by category then id, optionally limited."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'MJHQ-30K metadata {path!r} not found: download meta_data.json and '
            'mjhq30k_imgs.zip from the playgroundai/MJHQ-30K dataset, unzip the images, and '
            'set test_cfg.mjhq.meta_file and .reference_root')
    with open(path, encoding='utf-8') as f:
        meta = json.load(f)
    grouped = {}
    for image_id, entry in sorted(meta.items()):
        if categories is None or entry['category'] in categories:
            grouped.setdefault(entry['category'], []).append((image_id, entry['prompt']))
    if categories is not None and set(categories) - set(grouped):
        raise ValueError(f'MJHQ categories {sorted(set(categories) - set(grouped))} have no '
                         f'prompts in {path}; present: {sorted(grouped)}')
    return [(image_id, cat, prompt) for cat in sorted(grouped)
            for image_id, prompt in grouped[cat][:n_per_category]]


@METRICS.register_module()
class MJHQEvaluator:
    """Generates one image per MJHQ prompt (saved as ``<work_dir>/<outdir>/<category>/
    <id>.png``) and returns FID overall and per category against
    ``<reference_root>/<category>/<id>.jpg``. ``fid_weights``: the converted FID Inception
    file (default: ``$UNIMM_FID_WEIGHTS`` or ``~/.cache/unimm/fid_inception_v3.pth``, as
    for rFID; see ``tools/convert_fid_weights.py``)."""

    def __init__(self, meta_file, reference_root, categories=None, n_per_category=None,
                 batch_size=16, sampling=dict(cfg_scale=4.0), seed=0, outdir='mjhq',
                 fid_weights=None, reference_ext='.jpg'):
        self.meta_file, self.reference_root = meta_file, reference_root
        self.categories, self.n_per_category = categories, n_per_category
        self.batch_size, self.sampling, self.seed = batch_size, dict(sampling), seed
        self.outdir, self.fid_weights, self.reference_ext = outdir, fid_weights, reference_ext

    @staticmethod
    def _add(fids, entries, feats, which):
        """Features of ``entries`` into the overall and their categories' statistics."""
        fids['overall'].update_features(**{which: feats})
        for cat in {c for _, c, _ in entries}:
            rows = [k for k, (_, c, _) in enumerate(entries) if c == cat]
            fids[cat].update_features(**{which: feats[rows]})

    @torch.no_grad()
    def __call__(self, model, work_dir):
        entries = read_mjhq_meta(self.meta_file, self.categories, self.n_per_category)
        if not os.path.isdir(self.reference_root):
            raise FileNotFoundError(f'MJHQ reference_root {self.reference_root!r} is not a '
                                    'folder of <category>/<id>.jpg images')
        device = next(model.parameters()).device
        extractor = InceptionFeatures(self.fid_weights).to(device)
        cats = sorted({cat for _, cat, _ in entries})
        fids = {name: FIDAccumulator(extractor) for name in ['overall'] + cats}
        start, size = time.time(), None
        for k in range(0, len(entries), self.batch_size):
            chunk = entries[k:k + self.batch_size]
            images = model.generate_images([prompt for _, _, prompt in chunk], seed=self.seed + k,
                                           batch_size=len(chunk), **self.sampling)
            size = images.shape[-1]
            self._add(fids, chunk, extractor(images), 'fake')
            for (image_id, cat, _), array in zip(chunk, to_uint8(images).numpy()):
                folder = os.path.join(work_dir, self.outdir, cat)
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(array).save(os.path.join(folder, f'{image_id}.png'))
        generation_s = time.time() - start
        # references at the generated resolution (see the module docstring)
        transform = ImageTransform(size=size, resize='shorter', crop='center')
        missing = 0
        for k in range(0, len(entries), self.batch_size):
            chunk, images = [], []
            for entry in entries[k:k + self.batch_size]:
                path = os.path.join(self.reference_root, entry[1], entry[0] + self.reference_ext)
                img = load_image(path, path) if os.path.isfile(path) else None
                if img is None:
                    missing += 1
                    continue
                chunk.append(entry)
                images.append(transform(img))
            if chunk:
                self._add(fids, chunk, extractor(torch.stack(images).to(device)), 'real')
        if missing == len(entries):
            raise FileNotFoundError(f'none of the {len(entries)} reference images was found '
                                    f'under {self.reference_root}/<category>/<id>'
                                    f'{self.reference_ext}')
        return {'fid': fids['overall'].compute(),
                'fid_per_category': {cat: fids[cat].compute() for cat in cats},
                'num_images': len(entries), 'missing_references': missing,
                'resolution': size, 'generation_s': round(generation_s, 1)}
