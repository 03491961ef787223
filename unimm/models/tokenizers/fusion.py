"""How the pixel decoder sees semantic and texture codes (the paper's Tab. 5 ablation)."""
import torch

FUSIONS = ('channel', 'length', 'texture', 'semantic')


def fused_dim(fusion, semantic_dim, texture_dim):
    """Channels per decoder token for each fusion."""
    check_fusion(fusion)
    if fusion == 'channel':
        return semantic_dim + texture_dim
    if fusion == 'length':
        if semantic_dim != texture_dim:
            raise ValueError(f'length fusion needs equal code dims, got {semantic_dim} and '
                             f'{texture_dim}')
        return semantic_dim
    return texture_dim if fusion == 'texture' else semantic_dim


def fused_tokens(fusion, num_tokens):
    return 2 * num_tokens if fusion == 'length' else num_tokens


def check_fusion(fusion):
    if fusion not in FUSIONS:
        raise ValueError(f'fusion {fusion!r} is not one of {FUSIONS}')


def fuse(fusion, semantic, texture):
    """[B,N,Cs] and [B,N,Ct] -> decoder input: channel concat (default), length concat
    (2N tokens), texture only, or semantic only (the SPC-only decoder of Fig. 3)."""
    if fusion == 'channel':
        return torch.cat([semantic, texture], dim=-1)
    if fusion == 'length':
        return torch.cat([semantic, texture], dim=1)
    return texture if fusion == 'texture' else semantic
