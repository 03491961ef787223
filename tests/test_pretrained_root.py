"""One root for downloaded weights: every recipe names its pretrained folders under
``checkpoints/`` (what recipes train is read from ``work_dirs/``), and the errors for a
missing folder point there."""
import os

import pytest

from tests.recipes import CONFIG_ROOT, CONFIGS
from unimm.engine.config import load_config

ROOT = 'checkpoints/'
TRAINED = 'work_dirs/'
FOLDER_KEYS = ('pretrained', 'llm', 'tokenizer')  # keys that name a model folder


def folder_values(node, where=''):
    """(key path, value) of every string under a FOLDER_KEYS key, and of every string that
    starts like a path to weights, anywhere in a config tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            path = f'{where}.{k}' if where else str(k)
            if k in FOLDER_KEYS and isinstance(v, str):
                yield path, v
            else:
                yield from folder_values(v, path)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from folder_values(v, f'{where}[{i}]')
    elif isinstance(node, str) and node.startswith(('pretrained/', 'checkpoints/')):
        yield where, node


def test_every_recipe_reads_weights_from_one_root():
    seen = set()
    for config in CONFIGS:
        cfg = load_config(os.path.join(CONFIG_ROOT, config)).to_dict()
        for path, value in folder_values(cfg):
            assert value.startswith((ROOT, TRAINED)), (config, path, value)
            if value.startswith(ROOT):
                seen.add(value)
    # the paper-scale recipes name these four downloads, all under the root
    assert {'checkpoints/siglip-large-patch16-256', 'checkpoints/siglip-so400m-patch14-384',
            'checkpoints/vicuna-7b-v1.5', 'checkpoints/Qwen2.5-3B'} <= seen, seen


def test_missing_folders_point_at_the_root(tmp_path):
    from unimm.models.encoders.semantic import SemanticEncoder
    from unimm.models.mllm import generation, understanding, unified
    from unimm.models.mllm.llm import load_llm, load_text_tokenizer
    with pytest.raises(FileNotFoundError, match=f'at {ROOT}siglip-large-patch16-256'):
        SemanticEncoder(pretrained=str(tmp_path / 'siglip'))
    for module in (understanding, unified):
        with pytest.raises(FileNotFoundError, match=f'--local-dir {ROOT}vicuna-7b-v1.5'):
            load_llm(str(tmp_path / 'llm'), 'sdpa', 'llm', module.LLM_HINT)
    with pytest.raises(FileNotFoundError, match=f'--local-dir {ROOT}Qwen2.5-3B'):
        load_llm(str(tmp_path / 'llm'), 'sdpa', 'llm', generation.LLM_HINT)
    with pytest.raises(FileNotFoundError, match=f'--local-dir {ROOT}vicuna-7b-v1.5'):
        load_text_tokenizer(str(tmp_path / 'tok'), 'tokenizer')
