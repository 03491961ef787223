"""Image sizes that are not a multiple of the patch (SigLIP-so400m/14 at 384 px: a 27 x 27
grid): the floored grid of a stride-p patch convolution, as Hugging Face's SigLIP has it,
for the semantic encoder (loaded from a saved folder), the ViT pixel encoder and the ViT
pixel decoder."""
import pytest
import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

from unimm.models.decoders.vit import ViTDecoder
from unimm.models.encoders.semantic import SemanticEncoder
from unimm.models.encoders.vit import ViTEncoder

SIZE, PATCH, GRID = 30, 4, 7  # 30 = 7 * 4 + 2: two rows and columns left over


@pytest.fixture(scope='module')
def tiny_siglip(tmp_path_factory):
    """A saved SigLIP vision tower at a size its patch does not divide."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp('siglip_30px')
    SiglipVisionModel(SiglipVisionConfig(
        image_size=SIZE, patch_size=PATCH, hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=2)).save_pretrained(folder)
    return str(folder)


def images(n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, SIZE, SIZE, generator=g) * 2 - 1


def test_semantic_encoder_matches_hf_siglip_on_a_non_divisible_size(tiny_siglip):
    hf = SiglipVisionModel.from_pretrained(tiny_siglip).eval()
    ours = SemanticEncoder(pretrained=tiny_siglip)  # unimm's loading path
    x = images()
    assert ours.grid_size == (GRID, GRID) and ours.num_tokens == GRID * GRID
    with torch.no_grad():
        want = hf(pixel_values=x).last_hidden_state
        got = ours(x)
    assert want.shape[1] == GRID * GRID  # HF floors too
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_vit_encoder_patch_embedding_floors_like_hf_siglip(tiny_siglip):
    """With SigLIP's patch convolution and position table copied in, the tokens the
    ViTEncoder's blocks receive are SigLIP's embeddings, token for token."""
    hf = SiglipVisionModel.from_pretrained(tiny_siglip).eval()
    enc = ViTEncoder(image_size=SIZE, patch_size=PATCH, width=32, depth=1, num_heads=2,
                     out_dim=8).eval()
    assert enc.grid_size == (GRID, GRID) and enc.num_tokens == GRID * GRID
    emb = hf.embeddings
    with torch.no_grad():
        enc.patch_embed.weight.copy_(emb.patch_embedding.weight)
        enc.patch_embed.bias.copy_(emb.patch_embedding.bias)
        enc.pos_embed.weight.copy_(emb.position_embedding.weight[None])
    seen = {}
    enc.blocks.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    x = images()
    with torch.no_grad():
        out = enc(x)
        want = emb(x)
    assert out.shape == (2, GRID * GRID, 8)
    torch.testing.assert_close(seen['x'], want, rtol=1e-5, atol=1e-5)


def test_drop_ignores_the_leftover_pixels_and_resize_uses_them():
    torch.manual_seed(0)
    drop = ViTEncoder(image_size=SIZE, patch_size=PATCH, width=32, depth=1, num_heads=2,
                      out_dim=8).eval()
    resize = ViTEncoder(image_size=SIZE, patch_size=PATCH, width=32, depth=1, num_heads=2,
                        out_dim=8, remainder='resize').eval()
    resize.load_state_dict(drop.state_dict())
    x = images()
    edge = x.clone()
    edge[..., -2:, :] = 1.0  # only the two leftover rows and columns change
    edge[..., :, -2:] = 1.0
    inside = x.clone()
    inside[..., 0, 0] = -inside[..., 0, 0]  # a pixel of the first patch
    with torch.no_grad():
        assert torch.equal(drop(edge), drop(x))
        assert not torch.allclose(drop(inside), drop(x))
        moved = (resize(edge) - resize(x)).abs().amax(-1)[0].reshape(GRID, GRID)
    # resize: the leftover pixels are resampled into the last patch row and column
    assert moved[-1].mean() > 1e-3 and moved[:, -1].mean() > 1e-3
    # a constant image stays constant under the resize: both modes agree exactly there
    flat = torch.full((1, 3, SIZE, SIZE), 0.25)
    with torch.no_grad():
        torch.testing.assert_close(resize(flat), drop(flat), rtol=1e-5, atol=1e-6)


def test_vit_decoder_tiles_the_floored_grid_and_resizes_to_image_size():
    torch.manual_seed(0)
    dec = ViTDecoder(image_size=SIZE, patch_size=PATCH, in_dim=8, width=32, depth=1,
                     num_heads=2).eval()
    assert dec.grid_size == (GRID, GRID) and dec.num_tokens == GRID * GRID
    codes = torch.randn(2, GRID * GRID, 8)
    with torch.no_grad():
        out = dec(codes)
        assert out.shape == (2, 3, SIZE, SIZE) and torch.isfinite(out).all()
        # a head that paints every patch one colour per channel gives that colour everywhere
        dec.head.weight.zero_()
        dec.head.bias.copy_(torch.tensor([0.5, -0.25, 0.75]).repeat(PATCH * PATCH))
        flat = dec(codes)
    torch.testing.assert_close(flat, torch.tensor([0.5, -0.25, 0.75])[None, :, None, None]
                               .expand(2, 3, SIZE, SIZE), rtol=0, atol=1e-6)


def test_divisible_sizes_are_unchanged_and_tiny_images_are_refused():
    dec = ViTDecoder(image_size=32, patch_size=PATCH, in_dim=8, width=32, depth=1,
                     num_heads=2).eval()
    codes = torch.randn(1, 64, 8)
    with torch.no_grad():
        head = dec.head(dec.norm(dec.blocks(dec.pos_embed(dec.embed(codes)))))
        torch.testing.assert_close(dec(codes), dec.unpatchify(head))
    with pytest.raises(ValueError, match='smaller than patch_size'):
        ViTEncoder(image_size=3, patch_size=PATCH, width=32, depth=1, num_heads=2)
    with pytest.raises(ValueError, match='remainder'):
        ViTEncoder(image_size=SIZE, patch_size=PATCH, width=32, depth=1, num_heads=2,
                   remainder='pad')
