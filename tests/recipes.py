"""The every-recipe test's shrinking: any recipe of registry_configs/ at a tiny size (a 32 px
SigLIP, one-layer LMs, a few samples) so that every recipe can train a step in the tests.
The networks are sized by the package's shrinker (unimm.apis.shrink, strict); this file
adds the test's stand-ins: the session's tiny SigLIP and LM folders, the exports of
earlier tiny runs, shapes-world datasets by type, and the run settings."""
import itertools
import os
import re

import torch
from mmengine.config import Config

from unimm.apis.shrink import SCALES, num_tokens, shrink, siglip_config
from unimm.engine.compile import with_backend
from unimm.engine.config import check_config, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_ROOT = os.path.join(ROOT, 'registry_configs')
CONFIGS = sorted(os.path.relpath(os.path.join(d, f), CONFIG_ROOT)
                 for d, _, files in os.walk(CONFIG_ROOT) for f in files
                 if f.endswith('.py') and '_base_' not in os.path.relpath(d, CONFIG_ROOT))
EXPORT = re.compile(r'^work_dirs/([\w.-]+)/export$')
# the benchmark's tiny scale with 32 codes and a one-layer discriminator
TINY = dict(SCALES['tiny'], codes=32, discriminator=dict(base_channels=8, num_layers=1))
SIZE = TINY['image']
TOKENS = num_tokens(TINY)
SIGLIP = siglip_config(TINY)


def name_of(config):
    """A recipe's name, which tools/train.py makes its default work_dir (work_dirs/NAME)."""
    return os.path.splitext(os.path.basename(config))[0]


# ------------------------------------------------------------------ the test's stand-ins
def _llm_owner(ctx):
    def rule(node):
        node = dict(node, llm=ctx['llm'])
        if node.get('tokenizer'):
            node['tokenizer'] = ctx['llm']
        return node
    return rule


def stand_ins(ctx):
    """The test's rules after the sizes: a SigLIP folder is the session's tiny one, an
    MLLM's LLM and tokenizer the session's tiny LM; no LPIPS, one k-means iteration, the
    GAN from step 0 (so its step runs), a short SigLIP vocabulary."""
    return {
        'SemanticEncoder': lambda n: n if n.get('vision_config') is not None
        else dict(n, pretrained=ctx['siglip']),
        'SemanticPriorityCodebook': lambda n: dict(n, kmeans_iters=1),
        'PixelReconstructionLoss': lambda n: dict(n, perceptual_weight=0.0, lpips=None),
        'PatchGANDiscriminator': lambda n: dict(n, start_step=0),
        'SiglipTeacher': lambda n: dict(n, vocab_dataset=dict(n['vocab_dataset'], length=50)),
        **dict.fromkeys(('UnderstandingMLLM', 'GenerationMLLM', 'UnifiedMLLM'),
                        _llm_owner(ctx)),
    }


def shrink_tiny(node, ctx, where):
    """A recipe's component tree at ``TINY`` with the test's stand-ins; a path
    ``work_dirs/NAME/export`` becomes ``ctx['export'](NAME)``."""
    def paths(text):
        match = EXPORT.match(text)
        return ctx['export'](match.group(1)) if match else text
    return shrink(node, TINY, stand_ins(ctx), paths, strict=True,
                  where=f"{ctx['config']}: {where}")


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


def tiny_config(config, ctx):
    cfg = load_config(os.path.join(CONFIG_ROOT, config)).to_dict()
    cfg.pop('test_cfg', None)
    loader = cfg['train_dataloader']
    dataset_type = loader['dataset']['type']
    if dataset_type not in TINY_DATASETS:
        raise AssertionError(f'{config}: no tiny stand-in for dataset {dataset_type!r}: add '
                             'one to TINY_DATASETS (tests/recipes.py)')
    loader.update(dataset=TINY_DATASETS[dataset_type](loader['dataset'], ctx), batch_size=2,
                  num_workers=0)
    for key in ('model', 'discriminator'):
        if key in cfg:
            cfg[key] = shrink_tiny(cfg[key], ctx, key)
    cfg['train_cfg'] = dict(max_steps=1, log_interval=1)
    cfg['deepspeed'] = dict(cfg.get('deepspeed') or {}, precision='fp32')
    cfg['compile'] = with_backend(cfg.get('compile'), 'eager')
    cfg['checkpoint'] = dict(interval=1, max_keep=1)
    cfg['log_cfg'] = dict(tensorboard=False)
    cfg = Config(cfg)
    check_config(cfg)
    return cfg


def fixed_batch(dataset):
    from unimm.datasets.collate import collate_skip_corrupt
    from unimm.utils.batch import move_batch
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
