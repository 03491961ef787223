"""Tiny configs of the baseline tokenizers (pixel VQ, joint, dual codebook, dual encoder) and
their inputs, shared by the test modules that build them."""
import torch


D, K = 8, 16


PIXEL_LOSS = dict(type='PixelReconstructionLoss', l1_weight=1.0, l2_weight=1.0,
                  perceptual_weight=0.0, lpips=None)


def images(n=4, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def vit(kind, **kw):
    return dict(type=kind, image_size=32, patch_size=8, width=32, depth=1, num_heads=2, **kw)


def tower(teacher, frozen=True):
    return dict(type='SemanticEncoder', pretrained=teacher, frozen=frozen)


def semantic_decoder(in_dim=D):
    return dict(type='SemanticDecoder', in_dim=in_dim, width=32, depth=1, num_heads=2,
                out_dim=32, num_tokens=16)


def pixel_vq():
    return dict(type='PixelVQTokenizer', pixel_encoder=vit('ViTEncoder', out_dim=D),
                quantizer=dict(type='VectorQuantizer', num_codes=K, dim=D),
                pixel_decoder=vit('ViTDecoder', in_dim=D), pixel_loss=PIXEL_LOSS)


def configs(teacher):
    return {
        'pixel_vq': pixel_vq(),
        'joint': dict(type='JointTokenizer', encoder=tower(teacher, frozen=False),
                      teacher=tower(teacher), quantizer=dict(type='VectorQuantizer',
                                                             num_codes=K, dim=D),
                      semantic_decoder=semantic_decoder(),
                      pixel_decoder=vit('ViTDecoder', in_dim=D), pixel_loss=PIXEL_LOSS),
        'dual_codebook': dict(
            type='DualCodebookTokenizer', semantic_encoder=tower(teacher),
            pixel_encoder=vit('ViTEncoder', out_dim=4),
            quantizer=dict(type='DualCodebookQuantizer', num_codes=K, semantic_dim=D,
                           pixel_dim=4),
            semantic_decoder=semantic_decoder(), pixel_decoder=vit('ViTDecoder', in_dim=D + 4),
            pixel_loss=PIXEL_LOSS),
        'dual_encoder': dict(type='DualEncoderTokenizer', understanding=tower(teacher),
                             generation=pixel_vq()),
    }
