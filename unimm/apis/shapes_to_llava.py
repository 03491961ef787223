"""Shapes-world scenes as a LLaVA dataset on disk (behind tools/shapes_to_llava.py): PNG
images + LLaVA JSON, the format of LLaVA-Pretrain-558K (kind 'caption') and
LLaVA-v1.5-mix-665K (kind 'vqa'); LLaVADataset(data_path=OUT/shapes_<kind>.json,
image_folder=OUT) reads it."""
import json
import os

from unimm.datasets.llava import shapes_records
from unimm.datasets.shapes import ShapesWorld


def shapes_to_llava(out, kind='vqa', seed=0, resolution=64, start=0, scenes=1000, turns=8):
    """Write scenes ``start .. start + scenes`` of the world (``seed``, ``resolution``) under
    ``out``: images/<index>.png and shapes_<kind>.json (``turns`` VQA turns per
    conversation); returns the JSON's path."""
    world = ShapesWorld(seed, resolution)
    os.makedirs(os.path.join(out, 'images'), exist_ok=True)
    records = []
    for index in range(start, start + scenes):
        name = f'images/{index:08d}.png'
        world.image(index).save(os.path.join(out, name))
        records += [dict(rec, image=name) for rec in shapes_records(world, index, kind, turns)]
    path = os.path.join(out, f'shapes_{kind}.json')
    with open(path, 'w') as f:
        json.dump(records, f)
    print(f'wrote {len(records)} records, {scenes} images to {path}')
    return path
