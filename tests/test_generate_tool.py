"""unimm.apis.generate (behind tools/generate.py) and `unimm.inference.generate_images` on a
tiny exported text-to-image model (a tiny Qwen2 on the session's demo SemHiTok): a prompt
file becomes one PNG per sample, a grid and a JSON line per image; the same seed gives the
same images, and each record says how to draw its image again."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from unimm.apis.tiny_lm import make_tiny_lm
from unimm.evaluation.recon import to_uint8
from unimm.inference import CFGSampler, generate_images  # the public names
from unimm.models.mllm.generation import GenerationMLLM
from unimm.registry import MODELS

CONFIG = 'registry_configs/demo/t2i_shapes.py'


@pytest.fixture(scope='module')
def export(tmp_path_factory, demo_tokenizer):
    root = tmp_path_factory.mktemp('generate')
    llm = make_tiny_lm(str(root / 'llm'), arch='qwen2', hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2)
    torch.manual_seed(0)
    MODELS.build(dict(type='GenerationMLLM', llm=llm, image_tokenizer=demo_tokenizer)
                 ).save_pretrained(root / 'export')
    return str(root / 'export')


def test_generate_tool_writes_samples_grid_and_records_and_repeats_for_a_seed(export, tmp_path):
    from unimm.apis.generate import generate, read_prompts
    prompts = tmp_path / 'prompts.txt'
    prompts.write_text('a red circle\n\ntwo blue squares\n')
    captions = read_prompts(prompts_file=str(prompts), n=3)
    runs = {name: generate(CONFIG, export, captions, str(tmp_path / name), batch_size=4,
                           seed=seed, cfg_scale=2, top_k=50, grid_columns=4)
            for name, seed in (('first', 3), ('again', 3), ('other', 4))}
    names = ['a_red_circle_0.png', 'a_red_circle_1.png', 'a_red_circle_2.png',
             'two_blue_squares_0.png', 'two_blue_squares_1.png', 'two_blue_squares_2.png']
    assert [os.path.basename(p) for p in runs['first']] == names
    assert sorted(os.listdir(tmp_path / 'first')) == sorted(names + ['grid.png', 'samples.jsonl'])

    def pixels(run):
        return np.stack([np.asarray(Image.open(p)) for p in runs[run]])
    assert pixels('first').shape == (6, 64, 64, 3)
    assert np.array_equal(pixels('first'), pixels('again'))
    assert not np.array_equal(pixels('first'), pixels('other'))
    grid = np.asarray(Image.open(tmp_path / 'first' / 'grid.png'))
    assert grid.shape == (2 * 66 + 2, 4 * 66 + 2, 3)  # 2 rows of 4, 2 px apart
    assert np.array_equal(grid[2:66, 68:132], pixels('first')[1])

    with open(tmp_path / 'first' / 'samples.jsonl') as f:
        records = [json.loads(line) for line in f]
    assert [(r['file'], r['prompt'], r['seed'], r['batch_row']) for r in records] == [
        (names[0], 'a red circle', 3, 0), (names[1], 'a red circle', 3, 1),
        (names[2], 'a red circle', 3, 2), (names[3], 'two blue squares', 3, 3),
        (names[4], 'two blue squares', 7, 0), (names[5], 'two blue squares', 7, 1)]
    assert all((r['cfg_scale'], r['cfg_schedule'], r['temperature'], r['top_k'], r['top_p'],
                r['batch_size']) == (2.0, 'constant', 1.0, 50, 1.0, 4) for r in records)

    # the library call gives the tool's images, and a record's batch draws its image again
    model = GenerationMLLM.from_pretrained(export).eval()
    settings = dict(cfg_scale=2.0, top_k=50)
    captions = ['a red circle'] * 3 + ['two blue squares'] * 3
    assert np.array_equal(to_uint8(generate_images(model, captions, batch_size=4, seed=3,
                                                   **settings)).numpy(), pixels('first'))
    last = records[5]
    again = generate_images(model, captions[4:6], batch_size=4, seed=last['seed'], **settings)
    assert np.array_equal(to_uint8(again)[last['batch_row']].numpy(), pixels('first')[5])
    assert isinstance(model.sampler(4), CFGSampler)
