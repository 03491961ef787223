"""Text-to-image data with the demo SemHiTok: pre-tokenised shards round-trip to the ids
of on-the-fly tokenisation, training on either gives the same loss, and an export with
its image tokenizer reloads and generates PNGs through tools/generate.py."""
import os

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_tool
from unimm.apis.tiny_lm import make_tiny_lm
from unimm.datasets.shapes_datasets import ShapesCaptionDataset
from unimm.datasets.t2i import PretokenizedT2IShards
from unimm.models.mllm.generation import GenerationMLLM, load_image_tokenizer
from unimm.registry import MODELS

SOURCE = dict(type='ShapesCaptionDataset', seed=0, resolution=64, start=100000, length=10)


@pytest.fixture(scope='module')
def t2i_config(tmp_path_factory, demo_tokenizer):
    """A demo-like config on a tiny Qwen2 and the session's demo tokenizer."""
    root = tmp_path_factory.mktemp('t2i')
    llm = make_tiny_lm(str(root / 'llm'), arch='qwen2', hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2)
    path = root / 'cfg.py'
    path.write_text(f"_base_ = [{os.path.abspath('registry_configs/demo/t2i_shapes.py')!r}]\n"
                    f"model = dict(llm={llm!r}, image_tokenizer={demo_tokenizer!r})\n"
                    f'_source_dataset = {SOURCE!r}\n')
    return str(path), llm


def test_pretokenized_shards_round_trip(t2i_config, demo_tokenizer, tmp_path):
    config, _ = t2i_config
    run_tool('pretokenize', config, '--source', '_source_dataset', '--out', tmp_path / 'tok',
             '--batch-size', 4, '--shard-size', 4)
    assert sorted(os.listdir(tmp_path / 'tok')) == [f'shard-{i:06d}.tar' for i in range(3)]
    items = list(PretokenizedT2IShards(str(tmp_path / 'tok')))
    source = ShapesCaptionDataset(**{k: v for k, v in SOURCE.items() if k != 'type'})
    tokenizer = load_image_tokenizer(demo_tokenizer)
    on_the_fly = tokenizer.encode(torch.stack([source[i]['image'] for i in range(10)]))
    assert torch.equal(torch.stack([it['visual_ids'] for it in items]), on_the_fly)
    assert [it['text'] for it in items] == [source[i]['text'] for i in range(10)]


def test_images_and_visual_ids_train_the_same(t2i_config, demo_tokenizer):
    _, llm = t2i_config
    model = MODELS.build(dict(type='GenerationMLLM', llm=llm, image_tokenizer=demo_tokenizer))
    assert (model.num_visual, model.factorization, model.num_image_tokens) == (3072, (256, 12), 64)
    source = ShapesCaptionDataset(start=100000, length=4)
    images = torch.stack([source[i]['image'] for i in range(4)])
    texts = [source[i]['text'] for i in range(4)]
    torch.manual_seed(0)
    from_images = model({'image': images, 'text': texts})['loss']
    torch.manual_seed(0)
    ids = model.encode_images(images)
    assert torch.equal(model({'visual_ids': ids, 'text': texts})['loss'], from_images)
    assert model.decode_images(ids).shape == (4, 3, 64, 64)
    assert not any(p.requires_grad for p in model.image_tokenizer.parameters())


def test_export_with_tokenizer_reloads_and_generates(t2i_config, demo_tokenizer, tmp_path):
    config, llm = t2i_config
    model = MODELS.build(dict(type='GenerationMLLM', llm=llm, image_tokenizer=demo_tokenizer))
    export = tmp_path / 'export'
    model.save_pretrained(export)
    assert load_file(export / 'image_tokenizer' / 'model.safetensors').keys() == \
        load_file(os.path.join(demo_tokenizer, 'model.safetensors')).keys()
    loaded = GenerationMLLM.from_pretrained(str(export))
    ids = torch.randint(0, loaded.num_visual, (2, 64))
    assert torch.equal(loaded.decode_images(ids), model.decode_images(ids))
    out = run_tool('generate', config, export, '--prompt', 'a photo of a red circle', '--n', 2,
                   '--out', tmp_path / 'png', '--cfg-scale', 2.0)
    assert sorted(os.listdir(tmp_path / 'png')) == ['a_photo_of_a_red_circle_0.png',
                                                    'a_photo_of_a_red_circle_1.png',
                                                    'grid.png', 'samples.jsonl']
    assert 'a_photo_of_a_red_circle_1.png' in out
