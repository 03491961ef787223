"""Encoders and decoders: the SigLIP semantic encoder (teacher load, frozen, random init,
config round trip without the teacher folder), the ViT pixel encoder / decoder (shapes,
raster layout, presets, overfitting) and the semantic decoder's cosine loss."""
import json

import pytest
import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

from unimm.models.decoders.vit import ViTDecoder
from unimm.models.encoders.semantic import SemanticEncoder
from unimm.models.encoders.vit import ViTEncoder
from unimm.models.losses import cosine_loss
from unimm.registry import MODELS

TINY_SIGLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, image_size=32, patch_size=8)
TINY_VIT = dict(image_size=32, patch_size=8, width=32, depth=2, num_heads=4)


@pytest.fixture(scope='module')
def teacher_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp('siglip')
    SiglipVisionModel(SiglipVisionConfig(**TINY_SIGLIP)).save_pretrained(folder)
    return str(folder)


def images(b=2, size=32):
    return torch.rand(b, 3, size, size) * 2 - 1


# ---------------------------------------------------------------- SemanticEncoder

def test_semantic_encoder_matches_siglip(teacher_folder):
    enc = MODELS.build(dict(type='SemanticEncoder', pretrained=teacher_folder))
    ref = SiglipVisionModel.from_pretrained(teacher_folder).eval()
    x = images()
    with torch.no_grad():
        assert torch.equal(enc(x), ref(pixel_values=x).last_hidden_state)
        hidden = ref(pixel_values=x, output_hidden_states=True).hidden_states
        enc.feature_layer = -2
        assert torch.equal(enc(x), hidden[-2])
    assert enc.grid_size == (4, 4) and enc.out_dim == 32
    assert enc(x).shape == (2, 16, 32)


def test_semantic_encoder_loads_full_siglip_export(tmp_path):
    """The demo teacher's export is a full SiglipModel (image + text towers)."""
    from transformers import SiglipConfig, SiglipModel
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                vocab_size=50, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    full = SiglipModel(SiglipConfig(text_config=text, vision_config=TINY_SIGLIP)).eval()
    full.save_pretrained(tmp_path)
    enc = SemanticEncoder(pretrained=str(tmp_path))
    x = images()
    with torch.no_grad():
        assert torch.equal(enc(x), full.vision_model(pixel_values=x).last_hidden_state)
    assert SemanticEncoder(pretrained=str(tmp_path), init='random').out_dim == 32


def test_semantic_encoder_rejects_incomplete_weights(teacher_folder, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file
    shutil.copytree(teacher_folder, tmp_path / 'cut')
    weights = tmp_path / 'cut' / 'model.safetensors'
    tensors = load_file(weights)
    tensors = {k: v for k, v in tensors.items() if 'layers.1.' not in k}
    save_file(tensors, weights, metadata={'format': 'pt'})
    with pytest.raises(ValueError, match='lacks SigLIP vision weights'):
        SemanticEncoder(pretrained=str(tmp_path / 'cut'))


def test_semantic_encoder_frozen_stays_eval(teacher_folder):
    enc = SemanticEncoder(pretrained=teacher_folder)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    trainable = SemanticEncoder(pretrained=teacher_folder, frozen=False)
    assert all(p.requires_grad for p in trainable.parameters())
    assert trainable.train().model.training


def test_semantic_encoder_random_init(teacher_folder):
    teacher = SemanticEncoder(pretrained=teacher_folder).state_dict()
    torch.manual_seed(1)
    rand = SemanticEncoder(pretrained=teacher_folder, init='random').state_dict()
    assert rand.keys() == teacher.keys()
    assert all(rand[k].shape == teacher[k].shape for k in rand)
    assert not torch.equal(rand['model.encoder.layers.0.self_attn.q_proj.weight'],
                           teacher['model.encoder.layers.0.self_attn.q_proj.weight'])
    from_dict = SemanticEncoder(vision_config=TINY_SIGLIP, init='random').state_dict()
    assert all(from_dict[k].shape == teacher[k].shape for k in teacher)


def test_semantic_encoder_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='not a Hugging Face model folder'):
        MODELS.build(dict(type='SemanticEncoder', pretrained=str(tmp_path / 'nope')))
    with pytest.raises(ValueError, match='needs `pretrained`'):
        SemanticEncoder()


def test_semantic_encoder_architecture_config_round_trip(teacher_folder, tmp_path):
    import shutil
    folder = tmp_path / 'teacher'
    shutil.copytree(teacher_folder, folder)
    enc = SemanticEncoder(pretrained=str(folder), frozen=True)
    cfg = json.loads(json.dumps(enc.architecture_config()))  # as config.json holds it
    assert cfg['pretrained'] is None and cfg['init'] == 'random' and cfg['frozen'] is True
    shutil.rmtree(folder)
    rebuilt = MODELS.build(cfg)
    rebuilt.load_state_dict(enc.state_dict(), strict=True)
    x = images()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), enc(x))
    assert not any(p.requires_grad for p in rebuilt.parameters())


# ---------------------------------------------------------------- ViT encoder / decoder

def test_vit_shapes():
    enc = MODELS.build(dict(type='ViTEncoder', out_dim=8, **TINY_VIT))
    dec = MODELS.build(dict(type='ViTDecoder', in_dim=8, **TINY_VIT))
    z = enc(images())
    assert z.shape == (2, 16, 8) and enc.grid_size == (4, 4) and enc.out_dim == 8
    assert dec(z).shape == (2, 3, 32, 32)
    assert dec.last_layer is dec.head.weight and dec.last_layer.shape == (8 * 8 * 3, 32)
    sincos = ViTDecoder(in_dim=8, pos_embed='sincos', num_tokens=32, **TINY_VIT)
    assert sincos(torch.randn(2, 32, 8)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match='expects 16 tokens'):
        dec(torch.randn(2, 32, 8))


def test_vit_grad_checkpointing_same_result():
    torch.manual_seed(0)
    enc = ViTEncoder(out_dim=8, **TINY_VIT)
    ckpt = ViTEncoder(out_dim=8, grad_checkpointing=True, **TINY_VIT)
    ckpt.load_state_dict(enc.state_dict())
    x = images()
    enc(x).square().sum().backward()
    ckpt(x).square().sum().backward()
    assert torch.allclose(enc.patch_embed.weight.grad, ckpt.patch_embed.weight.grad, atol=1e-5)


@pytest.mark.parametrize('num_tokens', [None, 32])
def test_vit_decoder_raster_layout(num_tokens):
    """With no blocks, a zero position embedding and one-hot inputs, token k's head output
    is a known function of k: it must land at raster patch k, in (row, col, channel)
    order inside the patch; with 2N tokens the last N are decoded."""
    n, p, grid = 16, 8, 4
    total = num_tokens or n
    dec = ViTDecoder(image_size=32, patch_size=p, in_dim=total, width=total, depth=0,
                     num_heads=1, num_tokens=num_tokens)
    with torch.no_grad():
        dec.pos_embed.weight.zero_()
        dec.embed.weight.copy_(torch.eye(total))
        dec.embed.bias.zero_()
        # output o of token k: (k - mean) / std (from the LayerNorm of one-hot k) + 1000 * o
        dec.head.weight.copy_(torch.arange(total, dtype=torch.float).expand(p * p * 3, total))
        dec.head.bias.copy_(1000.0 * torch.arange(p * p * 3))
        out = dec(torch.eye(total)[None])[0]
    std = ((1 / total) * (1 - 1 / total) + 1e-6) ** 0.5
    for k in range(n):
        token = total - n + k
        r, c = divmod(k, grid)
        for i in (0, 3, p - 1):
            for j in (0, 5, p - 1):
                for ch in range(3):
                    o = (i * p + j) * 3 + ch
                    want = (token - (total - 1) / 2) / std + 1000 * o
                    got = out[ch, r * p + i, c * p + j].item()
                    assert abs(got - want) < 1e-2, (k, i, j, ch, got, want)


def test_vit_presets():
    for cls in (ViTEncoder, ViTDecoder):
        with torch.device('meta'):
            base, large = cls(preset='base'), cls(preset='large')
        assert (base.width, base.depth, base.num_heads) == (768, 12, 12)
        assert (large.width, large.depth, large.num_heads) == (1024, 24, 16)
        assert len(large.blocks.blocks) == 24
        assert large.blocks.blocks[0].attn.num_heads == 16
        with pytest.raises(ValueError, match='leave width unset'):
            cls(preset='base', width=512)
        with pytest.raises(ValueError, match='preset must be one of'):
            cls(preset='huge')


def test_vit_autoencoder_overfits():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threads only add overhead on a shared CPU
    try:
        _overfit()
    finally:
        torch.set_num_threads(threads)


def _overfit():
    torch.manual_seed(0)
    enc = ViTEncoder(out_dim=8, **TINY_VIT)
    dec = ViTDecoder(in_dim=8, **TINY_VIT)
    x = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8) * 2 - 1, size=32,
                                        mode='bilinear', align_corners=False)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=2e-3)
    losses = []
    for _ in range(100):
        loss = (dec(enc(x)) - x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 5, (losses[0], losses[-1])


# ---------------------------------------------------------------- SemanticDecoder

def test_semantic_decoder():
    dec = MODELS.build(dict(type='SemanticDecoder', in_dim=8, width=32, depth=3, num_heads=4,
                            out_dim=24, num_tokens=16))
    assert dec(torch.randn(2, 16, 8)).shape == (2, 16, 24)
    f = torch.randn(2, 16, 24)
    assert cosine_loss(f, f).item() == pytest.approx(0, abs=1e-6)
    assert dec.cosine_loss(f, -f).item() == pytest.approx(2, abs=1e-6)
