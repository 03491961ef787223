"""The cosine distance that aligns decoded semantic features with a teacher's."""
import torch.nn.functional as F


def cosine_loss(pred, target):
    """Mean over tokens of ``1 - cos(pred, target)`` along the last dim: 0 when aligned,
    2 when opposite. ``target`` is used as given (detach it if it should not train)."""
    return (1 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()
