"""The `ImageTokenizer` protocol on every tokenizer type, each built tiny from its demo
recipe: ids in [0, vocab_size) of shape [B, num_tokens], decode(encode(x)) is
reconstruct(x), features of [B, num_tokens, features_dim], and the factorisation (where
present) splits and rejoins every id. Then the MLLMs on a tokenizer that is not SemHiTok:
`GenerationMLLM` on the pixel VQ trains a step, samples ids that decode and reloads;
`UnifiedMLLM` on the joint (VILA-U-style) tokenizer draws and reads images."""
import os

import pytest
import torch

from tests.recipes import CONFIG_ROOT, shrink_tiny
from unimm.apis.tiny_lm import make_tiny_lm, shapes_corpus
from unimm.engine.config import load_config
from unimm.models.mllm.generation import GenerationMLLM
from unimm.models.tokenizers import IdFactorization, ImageTokenizer
from unimm.registry import MODELS

DEMOS = {'SemHiTok': 'demo/sghc_shapes.py',
         'SemHiTok, SPC-only decoder': 'demo/spc_only_decoder_shapes.py',
         'PixelVQTokenizer': 'demo/baselines/pixel_vq_shapes.py',
         'JointTokenizer': 'demo/baselines/joint_shapes.py',
         'DualCodebookTokenizer': 'demo/baselines/dual_codebook_shapes.py',
         'DualEncoderTokenizer': 'demo/baselines/dual_encoder_shapes.py'}
CAPTIONS = ['a red circle', 'two blue squares']


def tiny_tokenizer(name, siglip):
    """The demo recipe's model, shrunk as the all-configs test shrinks it (32 px, 16 ids
    per image); exports it would load (``init_from``) are left out: random weights."""
    cfg = load_config(os.path.join(CONFIG_ROOT, DEMOS[name])).to_dict()['model']
    ctx = dict(config=DEMOS[name], siglip=siglip, export=lambda name: None)
    torch.manual_seed(0)
    return MODELS.build(shrink_tiny(cfg, ctx, 'model')).eval()


def images(n=3):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture(scope='module')
def tiny_qwen2(tmp_path_factory):
    return make_tiny_lm(str(tmp_path_factory.mktemp('tiny_qwen2')), arch='qwen2',
                        texts=list(shapes_corpus(num_scenes=50)), vocab_size=300,
                        hidden_size=32, num_hidden_layers=1, num_attention_heads=2)


@pytest.mark.parametrize('name', list(DEMOS))
def test_every_tokenizer_keeps_the_protocol(name, teacher):
    tok = tiny_tokenizer(name, teacher)
    assert isinstance(tok, ImageTokenizer)
    x = images()
    ids = tok.encode(x)
    assert ids.shape == (3, tok.num_tokens) and ids.dtype == torch.long
    assert 0 <= int(ids.min()) and int(ids.max()) < tok.vocab_size
    recon = tok.decode(ids)
    assert recon.shape == (3, 3, tok.image_size, tok.image_size)
    assert torch.equal(recon, tok.reconstruct(x))
    assert tok.features(x).shape == (3, tok.num_tokens, tok.features_dim)
    every = torch.randint(0, tok.vocab_size, (2, tok.num_tokens))
    assert torch.isfinite(tok.decode(every)).all()  # any id decodes
    factors = tok.factorization
    if factors is None:
        assert torch.equal(tok.semantic_ids(ids), ids)
        return
    assert isinstance(factors, IdFactorization)
    assert factors.num_semantic * factors.sub_codes == tok.vocab_size
    all_ids = torch.arange(tok.vocab_size)
    semantic, sub = factors.split(all_ids)
    assert int(semantic.max()) < factors.num_semantic and int(sub.max()) < factors.sub_codes
    assert torch.equal(factors.join(semantic, sub), all_ids)
    # SemHiTok: the semantic part of an id is the SPC code of its patch
    assert torch.equal(tok.semantic_ids(ids), tok.semantic(x)[1].ids)


def test_which_tokenizers_factorise(teacher):
    assert tiny_tokenizer('SemHiTok', teacher).factorization == (32, 12)
    for name in ('SemHiTok, SPC-only decoder', 'PixelVQTokenizer', 'DualEncoderTokenizer'):
        assert tiny_tokenizer(name, teacher).factorization is None, name


def test_dual_encoder_grids_must_agree(teacher):
    cfg = load_config(os.path.join(CONFIG_ROOT, DEMOS['DualEncoderTokenizer'])).to_dict()
    model = shrink_tiny(cfg['model'], dict(config='', siglip=teacher, export=None), 'model')
    model['generation']['pixel_encoder']['patch_size'] = 16
    model['generation']['pixel_decoder']['patch_size'] = 16
    with pytest.raises(ValueError, match='must agree'):
        MODELS.build(model)


def test_generation_mllm_on_a_pixel_vq(teacher, tiny_qwen2, tmp_path):
    tok = tiny_tokenizer('PixelVQTokenizer', teacher)
    tok.save_pretrained(tmp_path / 'vq')
    cfg = dict(type='GenerationMLLM', llm=tiny_qwen2, image_tokenizer=str(tmp_path / 'vq'),
               uncond_prob=0.0, max_caption_tokens=8)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    assert (model.num_visual, model.factorization, model.num_image_tokens) == \
        (tok.vocab_size, None, tok.num_tokens)
    batch = {'image': images(2), 'text': CAPTIONS}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(batch)['loss']
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert torch.isfinite(loss) and model(batch)['loss'] < loss

    model.eval()
    ids = model.generate_ids(CAPTIONS, cfg_scale=2.0, seed=0)
    assert ids.shape == (2, tok.num_tokens)
    assert 0 <= int(ids.min()) and int(ids.max()) < tok.vocab_size
    drawn = model.decode_images(ids)
    assert drawn.shape == (2, 3, tok.image_size, tok.image_size)
    assert torch.equal(drawn, tok.decode(ids).clamp(-1, 1))

    model.save_pretrained(tmp_path / 'export')
    loaded = GenerationMLLM.from_pretrained(str(tmp_path / 'export')).eval()
    assert torch.equal(loaded.generate_ids(CAPTIONS, cfg_scale=2.0, seed=0), ids)
    with pytest.raises(ValueError, match='FlatVisualHead'):
        MODELS.build(dict(cfg, visual_head=dict(type='FactorizedVisualHead')))


def test_unified_mllm_on_a_joint_tokenizer(teacher, tiny_qwen2, tmp_path):
    tok = tiny_tokenizer('JointTokenizer', teacher)
    tok.save_pretrained(tmp_path / 'joint')
    torch.manual_seed(0)
    model = MODELS.build(dict(type='UnifiedMLLM', llm=tiny_qwen2,
                              image_tokenizer=str(tmp_path / 'joint'), max_caption_tokens=8))
    assert (model.image_size, model.image_input_tokens, model.num_visual) == \
        (tok.image_size, tok.num_tokens, tok.vocab_size)
    x = images(2)
    assert model.image_embeddings(x).shape == (2, tok.num_tokens, model.llm.config.hidden_size)
    assert torch.isfinite(model({'image': x, 'text': CAPTIONS})['loss_gen'])
    ids = model.eval().generate_ids(CAPTIONS[:1], cfg_scale=1.0)
    assert model.decode_images(ids).shape == (1, 3, tok.image_size, tok.image_size)
