"""The recipe shrinker (unimm.apis.shrink) both the benchmark's twins and the every-recipe
test use: components sized by type wherever they sit, paths through the caller's
function, a strict walk that names a type without a rule; and the benchmark's tiny twin
of every kind of tokenizer recipe builds and trains a step at its sizes."""
import os

import pytest
import torch

from tests.runs import ROOT
from unimm.apis.shrink import SCALES, SIZE_RULES, num_tokens, shrink
from unimm.engine.config import load_config
from unimm.registry import MODELS
from unimm.utils.build import ConfigError

TINY = SCALES['tiny']


def test_components_are_sized_by_type_and_paths_mapped():
    tree = dict(type='JointTokenizer', init_from='work_dirs/a/export',
                parts=[dict(type='ViTDecoder', preset='large', image_size=256, patch_size=16,
                            num_tokens=512)],
                quantizer=dict(type='VectorQuantizer', num_codes=16384))
    out = shrink(tree, TINY, rules={'VectorQuantizer': lambda n: dict(n, beta=0.5)},
                 paths=lambda text: '/stand-in' if text == 'work_dirs/a/export' else text)
    assert out['init_from'] == '/stand-in' and out['type'] == 'JointTokenizer'
    decoder = out['parts'][0]
    assert 'preset' not in decoder and (decoder['image_size'], decoder['width']) == (32, 32)
    assert decoder['num_tokens'] == 2 * num_tokens(TINY)  # two segments, as in the recipe
    assert out['quantizer'] == dict(type='VectorQuantizer', num_codes=TINY['codes'], beta=0.5)
    assert shrink(tree) == tree  # no scale, no rules: unchanged
    assert tree['quantizer']['num_codes'] == 16384  # the input is not modified


def test_a_strict_walk_names_a_type_without_a_rule():
    tree = dict(type='SemHiTok', pixel_decoder=dict(type='MyDecoder'))
    with pytest.raises(ConfigError, match=r"recipe\.py: model\.pixel_decoder: 'MyDecoder'"):
        shrink(tree, TINY, strict=True, where='recipe.py: model')
    assert shrink(tree, TINY) == tree
    assert 'MyDecoder' not in SIZE_RULES


@pytest.mark.parametrize('recipe', ['baselines/joint_siglip_l16', 'baselines/pixel_vq_vitb',
                                    'baselines/semhitok_fusion_length', 'sghc_vitb'])
def test_tiny_twin_of_a_tokenizer_recipe_trains_a_step(recipe, tmp_path):
    from unimm.apis.benchmark import twin_config
    twin = twin_config(load_config(os.path.join(ROOT, 'registry_configs', f'{recipe}.py')),
                       str(tmp_path), 'tiny')
    torch.manual_seed(0)
    model = MODELS.build(twin.model).train()
    images = torch.rand(2, 3, TINY['image'], TINY['image']) * 2 - 1
    losses = model({'image': images})
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    total.backward()
