"""The recipe shrinker: a recipe's component tree rewritten component by component, at a
scale of ``SCALES`` (or a caller's variant of one). Two callers share it:

* the benchmark's twins (``unimm.apis.benchmark.twin_config``, ``tools/benchmark.py twin``
  and ``train``): the 'small' and 'tiny' scales; at 'paper' nothing is sized;
* the every-recipe test (tests/recipes.py): the 'tiny' scale with 32 codes and a one-layer
  discriminator, strict: a component type the shrinker does not know fails the test.

The shared core is ``shrink``: it walks the tree, each component dict (a dict with a
``type``) before its children, rewrites it by ``SIZE_RULES`` (its networks and codebooks
at the scale's sizes: images and patches, SigLIP shape, ViT widths, codebook sizes,
discriminator), then by the caller's own rules for that type, and passes every string
through the caller's ``paths`` (exports and pretrained folders to stand-ins). What
differs past that core stays with each caller: the twin puts random weights where
pretrained folders were (random SigLIP init, random LPIPS weights, a random LM of the
recipe's family, a random tokenizer export) and takes the shapes world by model kind;
the test points them at its tiny SigLIP and LM folders and the exports of earlier tiny
runs, turns LPIPS off, and replaces each dataset by its type."""
from unimm.utils.build import ConfigError

# 'small': quick multi-GPU checks; 'tiny': the CPU. The network sizes (image, patch, codes,
# siglip, vit, semantic_decoder, discriminator) are read by SIZE_RULES; the twin's data
# and LM sizes (samples, max_length, llm, num_workers) by unimm.apis.benchmark.
SCALES = {
    'small': dict(image=128, patch=16, codes=1024, samples=2000, max_length=1024,
                  siglip=dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                              num_attention_heads=4),
                  vit=dict(width=256, depth=4, num_heads=4),
                  semantic_decoder=dict(width=256, depth=2, num_heads=4),
                  llm=dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                           vocab_size=2048),
                  discriminator=None, num_workers=2),
    'tiny': dict(image=32, patch=8, codes=64, samples=256, max_length=256,
                 siglip=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=2),
                 vit=dict(width=32, depth=1, num_heads=2),
                 semantic_decoder=dict(width=32, depth=1, num_heads=2),
                 llm=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          vocab_size=512),
                 discriminator=dict(base_channels=8, num_layers=2), num_workers=0),
}


def num_tokens(scale):
    """Patches per image at ``scale``."""
    return (scale['image'] // scale['patch']) ** 2


def siglip_config(scale):
    """The SigLIP vision tower's config at ``scale``."""
    return dict(image_size=scale['image'], patch_size=scale['patch'], **scale['siglip'])


def _vit(node, scale):
    old_grid = (node.get('image_size', 256) // node.get('patch_size', 16)) ** 2
    node = {k: v for k, v in node.items() if k != 'preset'}
    node.update(image_size=scale['image'], patch_size=scale['patch'], **scale['vit'])
    if node.get('num_tokens'):  # length concat: keep the number of segments
        node['num_tokens'] = node['num_tokens'] // old_grid * num_tokens(scale)
    return node


def _semantic_encoder(node, scale):
    """A tower of its own shape takes the scale's; one loaded from a folder is left to the
    caller's stand-in rule."""
    if node.get('vision_config') is None:
        return node
    return dict(node, vision_config=siglip_config(scale))


# type -> rule(node, scale) -> node
SIZE_RULES = {
    'SemanticEncoder': _semantic_encoder,
    'ViTEncoder': _vit,
    'ViTDecoder': _vit,
    'EnhanceDecoder': _vit,
    'SemanticDecoder': lambda n, s: dict(n, num_tokens=num_tokens(s),
                                         out_dim=s['siglip']['hidden_size'],
                                         **s['semantic_decoder']),
    'SemanticPriorityCodebook': lambda n, s: dict(n, num_codes=s['codes']),
    'HierarchicalCodebook': lambda n, s: dict(n, num_semantic_codes=s['codes']),
    'VectorQuantizer': lambda n, s: dict(n, num_codes=s['codes']),
    'DualCodebookQuantizer': lambda n, s: dict(n, num_codes=s['codes']),
    'PatchGANDiscriminator': lambda n, s: dict(n, **(s['discriminator'] or {})),
    'SiglipTeacher': lambda n, s: dict(n, vision_config=siglip_config(s), text_config=dict(
        s['siglip'], projection_size=s['siglip']['hidden_size'])),
}

# types with no sizes of their own (their parts are sized by their own types, an LLM is
# a folder the caller replaces); ShapesCaptionDataset only as SiglipTeacher's vocab_dataset
SIZE_FREE = {'SemHiTok', 'JointTokenizer', 'PixelVQTokenizer', 'DualCodebookTokenizer',
             'DualEncoderTokenizer', 'TokenizerFeatures', 'ContinuousFeatures',
             'MLPProjector', 'FlatVisualHead', 'FactorizedVisualHead',
             'PixelReconstructionLoss', 'UnderstandingMLLM', 'GenerationMLLM', 'UnifiedMLLM',
             'ShapesCaptionDataset'}


def shrink(node, scale=None, rules=None, paths=None, strict=False, where='config'):
    """``node`` (a config tree of dicts, lists and tuples) rewritten: each component dict
    by ``SIZE_RULES`` at ``scale`` (None: no sizing), then by ``rules[type](node)``, then
    its children; each string by ``paths`` (if given). ``strict``: a type in neither
    ``SIZE_RULES`` nor ``SIZE_FREE`` raises ConfigError naming ``where`` and its key path."""
    rules = rules or {}
    if isinstance(node, dict):
        type_ = node.get('type')
        if type_ is not None:
            if strict and type_ not in SIZE_RULES and type_ not in SIZE_FREE:
                raise ConfigError(f'{where}: {type_!r} has no size rule: add one to SIZE_RULES '
                                  'or list it in SIZE_FREE (unimm/apis/shrink.py)')
            if scale is not None and type_ in SIZE_RULES:
                node = SIZE_RULES[type_](node, scale)
            if type_ in rules:
                node = rules[type_](node)
        return {k: shrink(v, scale, rules, paths, strict, f'{where}.{k}')
                for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(shrink(v, scale, rules, paths, strict, f'{where}[{i}]')
                          for i, v in enumerate(node))
    if isinstance(node, str) and paths is not None:
        return paths(node)
    return node
