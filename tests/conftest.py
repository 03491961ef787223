import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('DS_ACCELERATOR', 'cpu')
LAUNCHER_VARS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')
# session fixtures that train with tools/train.py in a subprocess: a test using one is slow
TRAINING_FIXTURES = {'demo_teacher', 'demo_tokenizer'}


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: subprocess trainings, torchrun, compiled or '
                            'every-recipe runs, the browser (the fast tier: -m "not slow")')
    config.addinivalue_line('markers', 'gpu: needs a CUDA GPU (skipped without one)')


def pytest_collection_modifyitems(config, items):
    no_gpu = pytest.mark.skip(reason='needs a CUDA GPU (run on the device)')
    for item in items:
        if TRAINING_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker('gpu') and not torch.cuda.is_available():
            item.add_marker(no_gpu)


def run_tool(tool, *args):
    """Run tools/<tool>.py in a fresh process (as a user would); fail with its output."""
    # a fresh single process: no launcher variables inherited from an in-process run
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    env.update(PYTHONPATH=ROOT, DS_ACCELERATOR='cpu')
    proc = subprocess.run([sys.executable, os.path.join('tools', tool + '.py'), *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def release_process_group(env):
    """Undo what in-process runners leave behind: the process group, through DeepSpeed so
    its cached groups go too (else the next runner's engine meets a destroyed group), and
    the launcher variables (restored to ``env``)."""
    if torch.distributed.is_initialized():
        import deepspeed.comm as ds_comm
        if ds_comm.comm.cdb is not None:
            ds_comm.destroy_process_group()
        else:
            torch.distributed.destroy_process_group()
    os.environ.clear()
    os.environ.update(env)


@pytest.fixture(scope='session')
def teacher(tmp_path_factory):
    """A random tiny SigLIP vision tower (32 px, 8x8 patches) saved as an HF folder."""
    from transformers import SiglipVisionConfig, SiglipVisionModel
    folder = tmp_path_factory.mktemp('tiny_siglip')
    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig(image_size=32, patch_size=8, hidden_size=32,
                                         intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2)).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope='session')
def demo_teacher(tmp_path_factory):
    """The stage-0 demo teacher, trained briefly: (work_dir, export folder)."""
    work = tmp_path_factory.mktemp('teacher')
    run_tool('train', 'registry_configs/demo/shapes_siglip.py', '--work-dir', work,
             '--cfg-options', 'train_cfg.max_steps=100', 'train_cfg.log_interval=50',
             'log_cfg.tensorboard=False')
    return work, os.path.join(work, 'export')


@pytest.fixture(scope='session')
def demo_tokenizer(demo_teacher, tmp_path_factory):
    """A briefly trained demo SemHiTok (stage 1 then stage 2, no discriminator): its
    export folder. 64 px images -> 64 ids in [0, 256 * 12)."""
    _, teacher = demo_teacher
    work = tmp_path_factory.mktemp('tokenizer')
    quiet = ['train_cfg.log_interval=5', 'log_cfg.tensorboard=False',
             'train_dataloader.num_workers=0', f'model.semantic_encoder.pretrained={teacher}']
    run_tool('train', 'registry_configs/demo/spc_shapes.py', '--work-dir', work / 'spc',
             '--cfg-options', 'train_cfg.max_steps=30', *quiet)
    run_tool('train', 'registry_configs/demo/sghc_shapes.py', '--work-dir', work / 'sghc',
             '--cfg-options', 'train_cfg.max_steps=10', f'model.init_from={work}/spc/export',
             'discriminator.start_step=100000', *quiet)
    return str(work / 'sghc' / 'export')


@pytest.fixture(scope='session')
def tiny_unified_parts(tmp_path_factory):
    """(tiny LLaMA folder, random tiny SGHC SemHiTok export folder): 32 px images of 4x4
    tokens, K = 16 semantic codes x m = 4 sub-codes; the parts of the tiny unified,
    understanding and generation models of the tests."""
    from unimm.models.mllm.conversation import VICUNA_SYSTEM
    from unimm.apis.tiny_lm import make_tiny_lm, shapes_corpus
    from unimm.registry import MODELS
    size, k, m, tokens = 32, 16, 4, 16
    root = tmp_path_factory.mktemp('unified')
    llm = make_tiny_lm(str(root / 'llm'), texts=list(shapes_corpus(num_scenes=50)),
                       vocab_size=400, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, extra_texts=[VICUNA_SYSTEM])
    torch.manual_seed(0)
    tokenizer = MODELS.build(dict(
        type='SemHiTok', stage='sghc',
        semantic_encoder=dict(type='SemanticEncoder', init='random', vision_config=dict(
            image_size=size, patch_size=8, hidden_size=32, intermediate_size=64,
            num_hidden_layers=1, num_attention_heads=2)),
        semantic_quantizer=dict(type='SemanticPriorityCodebook', num_codes=k, dim=8),
        semantic_decoder=dict(type='SemanticDecoder', in_dim=8, width=32, depth=1, num_heads=2,
                              out_dim=32, num_tokens=tokens),
        pixel_encoder=dict(type='ViTEncoder', image_size=size, patch_size=8, width=32, depth=1,
                           num_heads=2, out_dim=8),
        pixel_quantizer=dict(type='HierarchicalCodebook', num_semantic_codes=k, sub_codes=m,
                             dim=8),
        pixel_decoder=dict(type='ViTDecoder', image_size=size, patch_size=8, in_dim=16,
                           width=32, depth=1, num_heads=2),
        pixel_loss=dict(type='PixelReconstructionLoss', perceptual_weight=0.0, lpips=None)))
    tokenizer.save_pretrained(root / 'tokenizer')
    return llm, str(root / 'tokenizer')


@pytest.fixture(scope='session')
def tiny_generator(tmp_path_factory):
    """``tiny_generator(head_type, **vocabulary)``: a GenerationMLLM (K = 20, m = 4, 10
    image tokens by default) on a saved tiny Qwen2 (width 64: the GPU matrix-vector
    kernel's rows are multiples of 8), random weights, no image tokenizer, on the CPU."""
    from unimm.apis.tiny_lm import make_tiny_lm
    from unimm.registry import MODELS
    folder = make_tiny_lm(tmp_path_factory.mktemp('qwen2'), arch='qwen2', hidden_size=64,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          vocab_size=300)

    def build(head, num_semantic=20, sub_codes=4, num_image_tokens=10):
        torch.manual_seed(0)
        return MODELS.build(dict(type='GenerationMLLM', llm=str(folder),
                                 num_semantic=num_semantic, sub_codes=sub_codes,
                                 num_image_tokens=num_image_tokens,
                                 visual_head=dict(type=head))).eval()
    return build


@pytest.fixture
def chain_folder(tmp_path, monkeypatch):
    """A folder to run the shapes-reference chain in on the CPU: the recipes linked in, no
    launcher variables, DeepSpeed on the CPU, a one-layer reference LLM."""
    import unimm.apis.shapes_reference as chain
    os.symlink(os.path.join(ROOT, 'registry_configs'), tmp_path / 'registry_configs')
    monkeypatch.chdir(tmp_path)
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('DS_ACCELERATOR', 'cpu')
    monkeypatch.setattr(chain, 'LM_SIZE', ['--vocab-size', '300', '--hidden-size', '32',
                                           '--layers', '1', '--heads', '2'])
    return tmp_path
