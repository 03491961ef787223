"""Every recipe in registry_configs/ (all but _base_/) builds through the real Runner and
trains one step at a tiny size, and its export round-trips: no recipe silently rots.

How a recipe is made tiny (in-process, one shared tiny SigLIP and one tiny LM):

* every component dict is rewritten by its ``type`` through ``TINY`` (widths, depths,
  codebook sizes, 32 px images with 8 px patches, i.e. 16 tokens; SigLIP and LLM folders
  replaced by the session's tiny ones; LPIPS off; the discriminator starts at step 0 so
  the GAN step runs). A type with nothing to shrink is listed in ``SIZE_FREE``. A type
  in neither fails the test naming the recipe and the type: add its rule here.
* the training dataset is replaced through ``TINY_DATASETS`` by a shapes-world dataset of
  the same kind (images + captions, or LLaVA conversations), 4 items, 32 px.
* a path ``work_dirs/NAME/export`` (``init_from``, ``image_tokenizer``, a tokenizer or
  projector export) is the export of recipe NAME's tiny run, trained first: recipes
  form a chain (spc -> sghc -> enhance -> llava / t2i), tested as such.
* run settings: batch 2, 1 step, fp32, no workers, no TensorBoard, no test_cfg; the
  ZeRO stage stays the recipe's; a recipe's ``compile`` runs with the ``eager`` backend
  (dynamo captures every network; inductor's kernels are left to the GPU).

Then: the step ran with finite losses; the model reloaded from the export folder gives
the same encode ids (tokenizers) and the same eval-mode loss on a fixed batch (all)."""
import functools
import itertools
import json
import math
import os
import re

import pytest
import torch
from mmengine.config import Config

from tests.conftest import release_process_group
from unimm.engine.compile import with_backend
from unimm.engine.config import check_config, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_ROOT = os.path.join(ROOT, 'registry_configs')
CONFIGS = sorted(os.path.relpath(os.path.join(d, f), CONFIG_ROOT)
                 for d, _, files in os.walk(CONFIG_ROOT) for f in files
                 if f.endswith('.py') and '_base_' not in os.path.relpath(d, CONFIG_ROOT))
EXPORT = re.compile(r'^work_dirs/([\w.-]+)/export$')
SIZE, PATCH = 32, 8
TOKENS = (SIZE // PATCH) ** 2
WIDTH = 32  # the tiny SigLIP's width, hence every semantic target's
CODES = 32
SIGLIP = dict(image_size=SIZE, patch_size=PATCH, hidden_size=WIDTH, intermediate_size=64,
              num_hidden_layers=1, num_attention_heads=2)
SIGLIP_TEXT = dict(hidden_size=WIDTH, intermediate_size=64, num_hidden_layers=1,
                   num_attention_heads=2, projection_size=WIDTH)


def name_of(config):
    """A recipe's name, which tools/train.py makes its default work_dir (work_dirs/NAME)."""
    return os.path.splitext(os.path.basename(config))[0]


def test_recipe_names_are_unique():
    names = [name_of(c) for c in CONFIGS]
    assert len(names) == len(set(names)), 'two recipes would share work_dirs/NAME'


# ------------------------------------------------------------------ per-type rules
def _vit(node, ctx):
    old_grid = (node.get('image_size', 256) // node.get('patch_size', 16)) ** 2
    node.update(image_size=SIZE, patch_size=PATCH, preset=None, width=32, depth=1, num_heads=2)
    if node.get('num_tokens'):  # length concat: keep the number of segments
        node['num_tokens'] = node['num_tokens'] // old_grid * TOKENS


def _semantic_encoder(node, ctx):
    if node.get('vision_config') is not None:
        node['vision_config'] = dict(SIGLIP)
    else:
        node['pretrained'] = ctx['siglip']


def _llm_owner(node, ctx):
    node['llm'] = ctx['llm']
    if node.get('tokenizer'):
        node['tokenizer'] = ctx['llm']


TINY = {
    'SemanticEncoder': _semantic_encoder,
    'ViTEncoder': _vit,
    'ViTDecoder': _vit,
    'SemanticDecoder': lambda n, c: n.update(width=32, depth=1, num_heads=2, out_dim=WIDTH,
                                             num_tokens=TOKENS),
    'SemanticPriorityCodebook': lambda n, c: n.update(num_codes=CODES, kmeans_iters=1),
    'HierarchicalCodebook': lambda n, c: n.update(num_semantic_codes=CODES),
    'VectorQuantizer': lambda n, c: n.update(num_codes=CODES),
    'DualCodebookQuantizer': lambda n, c: n.update(num_codes=CODES),
    'PixelReconstructionLoss': lambda n, c: n.update(perceptual_weight=0.0, lpips=None),
    'PatchGANDiscriminator': lambda n, c: n.update(base_channels=8, num_layers=1,
                                                   start_step=0),
    'SiglipTeacher': lambda n, c: n.update(vision_config=dict(SIGLIP),
                                           text_config=dict(SIGLIP_TEXT),
                                           vocab_dataset=dict(n['vocab_dataset'], length=50)),
    'UnderstandingMLLM': _llm_owner,
    'GenerationMLLM': _llm_owner,
    'UnifiedMLLM': _llm_owner,
}
SIZE_FREE = {'SemHiTok', 'JointTokenizer', 'PixelVQTokenizer', 'DualCodebookTokenizer',
             'DualEncoderTokenizer', 'TokenizerFeatures', 'ContinuousFeatures',
             'MLPProjector', 'FlatVisualHead', 'FactorizedVisualHead',
             'ShapesCaptionDataset'}  # the last only as SiglipTeacher's vocab_dataset


def _images(node, ctx):
    return dict(type='ShapesCaptionDataset', resolution=SIZE, length=4)


def _conversations(node, ctx):
    template = node.get('template', 'vicuna_v1')
    return dict(type='ShapesLLaVADataset', tokenizer=ctx['llm'], resolution=SIZE, length=4,
                kind='caption' if template == 'plain' else 'vqa', template=template,
                num_image_tokens=TOKENS, max_length=256, turns=2)


def _mixed(node, ctx):
    return dict(node, understanding=_conversations(node['understanding'], ctx),
                generation=_images(node['generation'], ctx))


TINY_DATASETS = {'ImageFolderDataset': _images, 'ShapesCaptionDataset': _images,
                 'WebDatasetShards': _images, 'PretokenizedT2IShards': _images,
                 'LLaVADataset': _conversations, 'ShapesLLaVADataset': _conversations,
                 'MixedTaskDataset': _mixed}


def shrink(node, ctx, where):
    """Rewrite a config tree in place: components by ``TINY``, export paths by ``ctx``."""
    if isinstance(node, dict):
        type_ = node.get('type')
        if type_ is not None:
            if type_ in TINY:
                TINY[type_](node, ctx)
            elif type_ not in SIZE_FREE:
                raise AssertionError(f'{where}: {ctx["config"]} names {type_!r}, which the '
                                     'all-configs test cannot shrink: add a rule to TINY or '
                                     'list it in SIZE_FREE (tests/test_all_configs.py)')
        for k, v in node.items():
            node[k] = shrink(v, ctx, f'{where}.{k}')
    elif isinstance(node, list):
        return [shrink(v, ctx, f'{where}[{i}]') for i, v in enumerate(node)]
    elif isinstance(node, str) and EXPORT.match(node):
        return ctx['export'](EXPORT.match(node).group(1))
    return node


def tiny_config(config, ctx):
    cfg = load_config(os.path.join(CONFIG_ROOT, config)).to_dict()
    cfg.pop('test_cfg', None)
    loader = cfg['train_dataloader']
    dataset_type = loader['dataset']['type']
    if dataset_type not in TINY_DATASETS:
        raise AssertionError(f'{config}: no tiny stand-in for dataset {dataset_type!r}: add '
                             'one to TINY_DATASETS (tests/test_all_configs.py)')
    loader.update(dataset=TINY_DATASETS[dataset_type](loader['dataset'], ctx), batch_size=2,
                  num_workers=0)
    for key in ('model', 'discriminator'):
        if key in cfg:
            cfg[key] = shrink(cfg[key], ctx, key)
    cfg['train_cfg'] = dict(max_steps=1, log_interval=1)
    cfg['deepspeed'] = dict(cfg.get('deepspeed') or {}, precision='fp32')
    cfg['compile'] = with_backend(cfg.get('compile'), 'eager')
    cfg['checkpoint'] = dict(interval=1, max_keep=1)
    cfg['log_cfg'] = dict(tensorboard=False)
    cfg = Config(cfg)
    check_config(cfg)
    return cfg


# ------------------------------------------------------------------ session fixtures
@pytest.fixture(scope='module')
def tiny_runs(tmp_path_factory):
    """``run(config) -> (model, dataset, work_dir)``: trains a recipe's tiny twin once
    (its exported dependencies first) and keeps the result for this module. The runners
    join a process group in this process and set RANK / MASTER_PORT ...: both are undone
    at the end, or later tests would see a rank and subprocesses a taken port."""
    env = dict(os.environ)
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from unimm.models.mllm.tiny_lm import make_tiny_lm, shapes_corpus
    root = tmp_path_factory.mktemp('all_configs')
    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig(**SIGLIP)).save_pretrained(root / 'siglip')
    make_tiny_lm(str(root / 'llm'), texts=list(shapes_corpus(num_scenes=100)), vocab_size=512,
                 hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    by_name = {name_of(c): c for c in CONFIGS}

    def export(name):
        if name not in by_name:
            raise AssertionError(f'work_dirs/{name}/export is named by a recipe but no '
                                 f'registry_configs/**/{name}.py trains it')
        return os.path.join(run(by_name[name])[2], 'export')

    @functools.lru_cache(maxsize=None)
    def run(config):
        from unimm.engine.runner import Runner
        ctx = dict(config=config, siglip=str(root / 'siglip'), llm=str(root / 'llm'),
                   export=export)
        cfg = tiny_config(config, ctx)
        work_dir = str(root / name_of(config))
        runner = Runner(cfg, work_dir)
        state = runner.train()
        assert state['global_step'] == 1 and state['nonfinite_total'] == 0, (config, state)
        return runner.engine.module.eval(), runner.dataset, work_dir

    yield run
    release_process_group(env)


def fixed_batch(dataset):
    from unimm.datasets.collate import collate_skip_corrupt
    from unimm.engine.runner import move_batch
    collate = getattr(dataset, 'collate_fn', collate_skip_corrupt)
    items = list(itertools.islice(dataset, 2)) \
        if isinstance(dataset, torch.utils.data.IterableDataset) else [dataset[i] for i in range(2)]
    batch = collate(items)
    batch.pop('num_skipped', None)
    return move_batch(batch, torch.device('cpu'), torch.float32)


def eval_loss(model, batch):
    torch.manual_seed(0)  # e.g. GenerationMLLM's caption drop draws from the global RNG
    with torch.no_grad():
        out = model(batch)
    return sum(v.float() for k, v in out.items() if k.startswith('loss'))


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS)
def test_recipe_trains_one_tiny_step_and_round_trips(config, tiny_runs):
    model, dataset, work_dir = tiny_runs(config)
    logs = [json.loads(line) for line in open(os.path.join(work_dir, 'log.jsonl'))
            if '"loss"' in line]
    assert logs and all(math.isfinite(v) for k, v in logs[-1].items()
                        if k.startswith(('loss', 'disc/loss'))), logs

    loaded = type(model).from_pretrained(os.path.join(work_dir, 'export')).eval()
    batch = fixed_batch(dataset)
    if hasattr(model, 'encode'):
        images = batch['image']
        ids = model.encode(images)
        assert ids.shape == (2, TOKENS) and torch.equal(loaded.encode(images), ids)
    assert torch.allclose(eval_loss(loaded, batch), eval_loss(model, batch), rtol=1e-5,
                          atol=1e-6)

