"""The baseline components: VectorQuantizer (LlamaGen), DualCodebookQuantizer's shared index
(TokenFlow), and the assemblies JointTokenizer (VILA-U), PixelVQTokenizer,
DualCodebookTokenizer and DualEncoderTokenizer (Janus) on tiny models: their losses,
gradients, id round-trips and save/load without the teacher folder."""
import pytest
import torch
import torch.nn.functional as F

from tests.tiny_baselines import D, K, configs, images
from unimm.models.base import PretrainedMixin
from unimm.models.discriminators import PatchGANDiscriminator
from unimm.registry import MODELS


# ----------------------------------------------------------------------- quantizers
def test_vector_quantizer_is_l2_normalised_nearest_code_with_straight_through():
    torch.manual_seed(0)
    vq = MODELS.build(dict(type='VectorQuantizer', num_codes=K, dim=D))
    z = torch.randn(2, 5, D, requires_grad=True)
    out = vq(z)
    codes = F.normalize(vq.embedding.weight, dim=-1)
    zn = F.normalize(z, dim=-1)
    assert torch.equal(out.ids, torch.cdist(zn, codes[None]).argmin(-1))
    assert torch.allclose(out.quantized, codes[out.ids], atol=1e-6)
    assert torch.allclose(out.quantized.norm(dim=-1), torch.ones(2, 5), atol=1e-5)
    assert torch.allclose(vq.lookup(out.ids), out.quantized, atol=1e-6)
    # straight-through: d(sum(w * q))/dz equals d(sum(w * normalize(z)))/dz
    w = torch.randn(2, 5, D)
    grad_q, = torch.autograd.grad((out.quantized * w).sum(), z)
    grad_n, = torch.autograd.grad((F.normalize(z, dim=-1) * w).sum(), z)
    assert torch.allclose(grad_q, grad_n, atol=1e-6)
    # codebook + commitment: the loss moves the selected codes (and only them)
    vq.zero_grad()
    vq(z.detach()).loss.backward()
    moved = vq.embedding.weight.grad.abs().sum(-1) > 0
    assert torch.equal(moved, torch.bincount(out.ids.flatten(), minlength=K) > 0)
    assert 0 < float(out.stats['usage']) <= 10 / K and float(out.stats['perplexity']) >= 1


def test_dual_codebook_shared_index_is_the_brute_force_argmin():
    torch.manual_seed(0)
    for w in (0.0, 1.0, 5.0):
        q = MODELS.build(dict(type='DualCodebookQuantizer', num_codes=K, semantic_dim=D,
                              pixel_dim=4, pixel_weight=w))
        z = torch.randn(3, 7, D + 4)
        out = q(z)
        zs, zp = F.normalize(z[..., :D], dim=-1), F.normalize(z[..., D:], dim=-1)
        es = F.normalize(q.semantic.embedding.weight, dim=-1)
        ep = F.normalize(q.pixel.embedding.weight, dim=-1)
        d = ((zs[..., None, :] - es) ** 2).sum(-1) + w * ((zp[..., None, :] - ep) ** 2).sum(-1)
        assert torch.equal(out.ids, d.argmin(-1))
        assert torch.allclose(out.quantized, q.lookup(out.ids), atol=1e-6)
        if w == 0.0:  # the pixel codebook then follows the semantic choice
            assert torch.equal(out.ids, q.semantic(z[..., :D]).ids)


# ----------------------------------------------------------------------- assemblies
@pytest.mark.parametrize('name', ['pixel_vq', 'joint', 'dual_codebook', 'dual_encoder'])
def test_assembly_trains_round_trips_ids_and_reloads(teacher, tmp_path, name):
    torch.manual_seed(0)
    model = MODELS.build(configs(teacher)[name])
    disc = MODELS.build(dict(type='PatchGANDiscriminator', base_channels=8, num_layers=1,
                             norm='group'))
    x = images()
    model.train()
    out = model({'image': x}, discriminator=disc.requires_grad_(False), step=0)
    losses = {k: v for k, v in out.items() if k.startswith('loss')}
    assert {'loss_l1', 'loss_l2', 'loss_codebook', 'loss_adv'} <= set(losses)
    assert ('loss_cosine' in losses) == (name in ('joint', 'dual_codebook'))
    assert all(torch.isfinite(v) for v in losses.values())
    fake = out['disc_inputs']['fake']
    assert set(out['disc_inputs']) == {'real', 'fake'} and not fake.requires_grad
    sum(losses.values()).backward()
    trained = [n for n, p in model.named_parameters() if p.grad is not None]
    assert trained and not any(n.startswith(('teacher.', 'understanding.')) for n in trained)

    model.eval()
    ids = model.encode(x)
    assert ids.shape == (4, 16) and ids.dtype == torch.long and int(ids.max()) < K
    recon = model.decode(ids)
    assert recon.shape == x.shape
    assert torch.equal(model.encode(x), ids)  # deterministic in eval mode

    model.save_pretrained(tmp_path / name)
    loaded = PretrainedMixin.from_pretrained(tmp_path / name).eval()
    assert torch.equal(loaded.encode(x), ids)
    assert torch.allclose(loaded.decode(ids), recon, atol=1e-6)
    assert teacher not in (tmp_path / name / 'config.json').read_text()  # no teacher needed


def test_joint_semantic_and_pixel_losses_both_reach_the_encoder(teacher):
    torch.manual_seed(0)
    model = MODELS.build(configs(teacher)['joint']).train()
    out = model({'image': images()})
    encoder = list(model.encoder.parameters())
    assert all(p.requires_grad for p in encoder)
    assert not any(p.requires_grad for p in model.teacher.parameters())
    for name in ('loss_cosine', 'loss_l1'):
        grads = torch.autograd.grad(out[name], encoder, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    # initialised from the teacher: before training both towers give the same features
    with torch.no_grad():
        assert torch.allclose(model.encoder(images()), model.teacher(images()), atol=1e-6)


def test_dual_encoder_features_are_the_siglip_tower(teacher):
    model = MODELS.build(configs(teacher)['dual_encoder']).eval()
    tower_ = MODELS.build(dict(type='SemanticEncoder', pretrained=teacher))
    with torch.no_grad():
        assert torch.equal(model.features(images()), tower_(images()))
    assert model.features(images()).shape == (4, 16, 32)
    assert torch.equal(model.encode(images()), model.generation.encode(images()))


def test_dual_codebook_ids_index_both_codebooks(teacher):
    model = MODELS.build(configs(teacher)['dual_codebook']).eval()
    x = images()
    q = model.quantize(x)
    assert torch.allclose(model.features(x), model.quantizer.lookup(q.ids), atol=1e-5)
    assert model.features(x).shape == (4, 16, D + 4)


def test_baselines_refuse_a_trainable_target(teacher):
    cfg = configs(teacher)
    cfg['joint']['teacher']['frozen'] = False
    with pytest.raises(ValueError, match='teacher must stay frozen'):
        MODELS.build(cfg['joint'])
    cfg['dual_codebook']['pixel_encoder']['out_dim'] = 5
    with pytest.raises(ValueError, match='pixel_dim'):
        MODELS.build(cfg['dual_codebook'])


def test_discriminator_helper_is_off_before_start():
    from unimm.models.discriminators import adversarial_terms
    disc = PatchGANDiscriminator(base_channels=8, num_layers=1, start_step=5)
    x = images(2)
    assert adversarial_terms({}, x, x, disc, 4, 1.0) == {}
    assert set(adversarial_terms({}, x, x, disc, 5, 1.0)) == {'loss_adv', 'disc_inputs'}
