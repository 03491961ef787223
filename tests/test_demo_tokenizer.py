"""The demo tokenizer recipes through tools/train.py and tools/test.py: stages 1 -> 2 (with
the discriminator) -> 3 on the shapes world, the freezing contract on the exported weights
and ids, and the reconstruction report."""
import json
import os

import torch
from safetensors.torch import load_file

from tests.conftest import run_tool
from unimm.models.base import PretrainedMixin
from unimm.registry import DATASETS

DEMO = 'registry_configs/demo'
QUIET = ['train_cfg.log_interval=2', 'log_cfg.tensorboard=False',
         'train_dataloader.num_workers=0']


def test_demo_stages_keep_semantics_and_report_reconstruction(demo_teacher, tmp_path):
    _, teacher = demo_teacher
    spc, sghc, enh = (tmp_path / s for s in ('spc', 'sghc', 'enhance'))
    teacher_opt = f'model.semantic_encoder.pretrained={teacher}'
    run_tool('train', f'{DEMO}/spc_shapes.py', '--work-dir', spc, '--cfg-options',
             teacher_opt, 'train_cfg.max_steps=15', *QUIET)
    run_tool('train', f'{DEMO}/sghc_shapes.py', '--work-dir', sghc, '--cfg-options',
             teacher_opt, f'model.init_from={spc}/export', 'train_cfg.max_steps=8',
             'discriminator.start_step=4', *QUIET)
    run_tool('train', f'{DEMO}/sghc_enhance_shapes.py', '--work-dir', enh, '--cfg-options',
             teacher_opt, f'model.init_from={sghc}/export', 'train_cfg.max_steps=4', *QUIET)

    logs = [json.loads(l) for l in open(sghc / 'log.jsonl') if '"loss"' in l]
    assert 'loss_adv' not in logs[0] and 'disc/loss_disc' in logs[-1]  # D joins at step 4

    weights = {s: load_file(os.path.join(s, 'export', 'model.safetensors'))
               for s in (spc, sghc, enh)}
    stage1 = {k: v for k, v in weights[spc].items() if k.startswith('semantic_')}
    assert stage1
    for later in (sghc, enh):
        assert all(torch.equal(v, weights[later][k]) for k, v in stage1.items())
    changed = [k for k, v in weights[sghc].items()
               if k.startswith('pixel_decoder.') and not torch.equal(v, weights[enh].get(k, v))]
    assert changed or any(k not in weights[sghc] for k in weights[enh])
    for k, v in weights[sghc].items():
        if k.startswith(('pixel_encoder.', 'pixel_quantizer.')):
            assert torch.equal(v, weights[enh][k]), k

    data = DATASETS.build(dict(type='ShapesCaptionDataset', resolution=64, start=100000,
                               length=16))
    x = torch.stack([data[i]['image'] for i in range(16)])
    a = PretrainedMixin.from_pretrained(spc / 'export').eval()
    c = PretrainedMixin.from_pretrained(enh / 'export').eval()
    with torch.no_grad():
        sem_ids, ids = a.encode(x), c.encode(x)
    assert torch.equal(ids // 12, sem_ids)

    run_tool('test', f'{DEMO}/sghc_enhance_shapes.py', enh / 'export', '--task', 'recon',
             '--work-dir', tmp_path / 'eval', '--cfg-options', 'test_cfg.recon.fid=False',
             'test_cfg.recon.dataset.length=40', teacher_opt)
    res = json.load(open(tmp_path / 'eval' / 'test_recon.json'))
    assert res['num_images'] == 40
    assert 0 <= res['attribute_accuracy'] <= 1 and res['psnr'] > 5 and 0 < res['ssim'] <= 1
    assert res['lpips'] > 0
    assert 0 < res['usage_global'] <= res['usage_semantic'] <= 1
    from PIL import Image
    assert Image.open(res['grid']).size == (16 * 64, 2 * 64)
