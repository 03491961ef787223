"""Stage 0: the demo teacher trains, retrieves far above chance on held-out scenes, and
its export is a normal HF SigLIP folder that SiglipVisionModel loads."""
import json
import os

import torch

from tests.conftest import run_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'registry_configs', 'demo', 'shapes_siglip.py')


def test_teacher_trains_and_retrieves(demo_teacher):
    _, export = demo_teacher
    run_tool('test', CONFIG, export, '--task', 'retrieval',
             '--cfg-options', 'test_cfg.retrieval.dataset.length=300')
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
