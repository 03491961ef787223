"""The demo tokenizer recipes through tools/train.py and tools/test.py: stages 1 -> 2 (with
the discriminator) -> 3 on the shapes world, the freezing contract on the exported weights
and ids, and the reconstruction report."""
import json
import os

import pytest
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
    run_tool('train', f'{DEMO}/enhance_decoder_shapes.py', '--work-dir', enh, '--cfg-options',
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

    run_tool('test', f'{DEMO}/enhance_decoder_shapes.py', enh / 'export', '--task', 'recon',
             '--work-dir', tmp_path / 'eval', '--cfg-options', 'test_cfg.recon.fid=False',
             'test_cfg.recon.dataset.length=40', teacher_opt)
    res = json.load(open(tmp_path / 'eval' / 'test_recon.json'))
    assert res['num_images'] == 40
    assert 0 <= res['attribute_accuracy'] <= 1 and res['psnr'] > 5 and 0 < res['ssim'] <= 1
    assert res['lpips'] > 0
    assert 0 < res['usage_global'] <= res['usage_semantic'] <= 1
    from PIL import Image
    assert Image.open(res['grid']).size == (16 * 64, 2 * 64)


@pytest.mark.slow
def test_demo_console_has_no_spurious_lines(tmp_path):
    """What a newcomer sees: the progress bar and the results, none of the libraries'
    start-up chatter (DeepSpeed's shm-op print and LR warning, transformers' token-id check
    and shard bar when the teacher is saved, torch's CUDA_HOME note)."""
    import subprocess
    import sys
    from tests.conftest import LAUNCHER_VARS, ROOT
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update(PYTHONPATH=ROOT, DS_ACCELERATOR='cpu')
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', f'{DEMO}/shapes_siglip.py', '--work-dir',
         str(tmp_path), '--cfg-options', 'train_cfg.max_steps=2', *QUIET],
        cwd=ROOT, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert 'exported weights to' in out and 'train:' in out
    for chatter in ('built successfully', 'before it has started', 'bos_token_id',
                    'eos_token_id', 'Writing model shards', 'No CUDA runtime'):
        assert chatter not in out, chatter


def test_stage2_in_bf16_keeps_every_semantic_id(demo_teacher, demo_tokenizer, tmp_path):
    """A bf16 run casts every parameter, frozen ones too: the semantic path (encoder and
    projection) must still compute in fp32 and be exported unrounded, or ids // m drift
    from stage 1's ids (1.5% of patches did on the GPU reference run)."""
    _, teacher = demo_teacher
    spc_export = os.path.join(os.path.dirname(os.path.dirname(demo_tokenizer)), 'spc', 'export')
    run_tool('train', f'{DEMO}/sghc_shapes.py', '--work-dir', tmp_path / 'sghc',
             '--cfg-options', f'model.semantic_encoder.pretrained={teacher}',
             f'model.init_from={spc_export}', 'train_cfg.max_steps=2',
             'deepspeed.precision=bf16', *QUIET)
    spc = PretrainedMixin.from_pretrained(spc_export).eval()
    sghc = PretrainedMixin.from_pretrained(tmp_path / 'sghc' / 'export').eval()
    for key, value in load_file(os.path.join(spc_export, 'model.safetensors')).items():
        if key.startswith(('semantic_encoder.', 'semantic_proj.')):
            assert torch.equal(sghc.state_dict()[key], value), key
    data = DATASETS.build(dict(type='ShapesCaptionDataset', seed=0, resolution=64,
                               start=100000, length=64))
    images = torch.stack([data[i]['image'] for i in range(len(data))])
    assert torch.equal(sghc.semantic_ids(sghc.encode(images)), spc.encode(images))
