"""Stage 0: the demo teacher trains, retrieves far above chance on held-out scenes, and
its export is a normal HF SigLIP folder that SiglipVisionModel loads."""
import json
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'registry_configs', 'demo', 'shapes_siglip.py')


def test_teacher_trains_and_retrieves(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, DS_ACCELERATOR='cpu')
    train = [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path),
             '--cfg-options', 'train_cfg.max_steps=150', 'train_cfg.log_interval=50',
             'log_cfg.tensorboard=False']
    proc = subprocess.run(train, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    export = os.path.join(tmp_path, 'export')
    test = [sys.executable, 'tools/test.py', CONFIG, export, '--task', 'retrieval',
            '--cfg-options', 'test_cfg.retrieval.dataset.length=300']
    proc = subprocess.run(test, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.load(open(os.path.join(export, 'test_retrieval.json')))
    assert res['num_pairs'] == 300
    assert res['image_to_text_top1'] > 20 * res['chance'], res
    assert res['text_to_image_top1'] > 20 * res['chance'], res

    # later stages load the vision tower exactly like a downloaded SigLIP checkpoint
    from transformers import SiglipModel, SiglipVisionModel
    vision = SiglipVisionModel.from_pretrained(export).eval()
    full = SiglipModel.from_pretrained(export).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        a = vision(pixel_values=x).last_hidden_state
        b = full.vision_model(pixel_values=x).last_hidden_state
    assert a.shape == (2, 64, full.config.vision_config.hidden_size)
    assert torch.equal(a, b)
    assert os.path.isfile(os.path.join(export, 'preprocessor_config.json'))
    assert os.path.isfile(os.path.join(export, 'tokenizer.json'))


def test_missing_teacher_folder_says_what_to_put_where(tmp_path):
    import pytest
    from unimm.registry import MODELS
    with pytest.raises(FileNotFoundError, match='not a Hugging Face model folder'):
        MODELS.build(dict(type='SiglipTeacher', pretrained=str(tmp_path / 'nope')))
