"""The recipe shrinker: rewrites any recipe of registry_configs/ to tiny sizes (a 32 px SigLIP,
one-layer LMs, a few samples) so that every recipe can train a step in the tests."""
import itertools
import os
import re

import torch
from mmengine.config import Config

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
    'EnhanceDecoder': _vit,
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
                                     'list it in SIZE_FREE (tests/recipes.py)')
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
