"""Registered torch datasets over the shapes world: caption pairs, VQA triples and the
GenEval-style prompt list. Images are float tensors [3, H, W] in [-1, 1]. ``texture=True``
uses the textured world (patterned shapes and background; 128 px unless ``resolution``)."""
import numpy as np
from torch.utils.data import Dataset

from unimm.datasets.shapes import ShapesWorld, sample_geneval_prompts
from unimm.datasets.transforms import pil_to_tensor
from unimm.registry import DATASETS


@DATASETS.register_module()
class ShapesCaptionDataset(Dataset):
    """Item i is scene ``start + i``: dict(image, text=caption, index=start + i)."""

    def __init__(self, seed=0, resolution=None, start=0, length=10000, min_shapes=1, max_shapes=4,
                 texture=False):
        self.world = ShapesWorld(seed, resolution, min_shapes, max_shapes, texture)
        self.start = start
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if not 0 <= i < self.length:
            raise IndexError(i)
        index = self.start + i
        return {'image': pil_to_tensor(self.world.image(index)),
                'text': self.world.caption(index), 'index': index}


@DATASETS.register_module()
class ShapesVQADataset(Dataset):
    """One item per VQA pair of scenes ``start .. start + length - 1``, scene by scene in
    ``vqa_pairs`` order: dict(image, question, answer, index=scene index)."""

    def __init__(self, seed=0, resolution=None, start=0, length=10000, min_shapes=1, max_shapes=4,
                 texture=False):
        self.world = ShapesWorld(seed, resolution, min_shapes, max_shapes, texture)
        self.start = start
        counts = [len(self.pairs(start + i)) for i in range(length)]
        self.offsets = np.cumsum([0] + counts)  # item k belongs to the scene whose range holds it

    def pairs(self, index):
        """The (question, answer) pairs of scene ``index``."""
        return self.world.vqa(index)

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, k):
        if not 0 <= k < len(self):
            raise IndexError(k)
        i = int(np.searchsorted(self.offsets, k, side='right')) - 1
        index = self.start + i
        question, answer = self.pairs(index)[k - self.offsets[i]]
        return {'image': pil_to_tensor(self.world.image(index)), 'question': question,
                'answer': answer, 'index': index}


@DATASETS.register_module()
class ShapesPOPEDataset(ShapesVQADataset):
    """``ShapesVQADataset`` over POPE-style questions: per scene, a yes for every distinct
    colour-kind pair present and as many no's, the negatives drawn by ``strategy``
    (``'adversarial'``: a present kind in an absent colour or a present colour on an absent
    kind first; ``'random'``: any absent pair), balanced over the whole set."""

    def __init__(self, seed=0, resolution=None, start=0, length=10000, min_shapes=1, max_shapes=4,
                 texture=False, strategy='adversarial'):
        self.strategy = strategy
        super().__init__(seed, resolution, start, length, min_shapes, max_shapes, texture)

    def pairs(self, index):
        return self.world.pope(index, self.strategy)


@DATASETS.register_module()
class ShapesGenEvalPrompts(Dataset):
    """GenEval-style prompt dicts (tag, include, exclude, prompt), ``n_per_tag`` per tag."""

    def __init__(self, seed=0, n_per_tag=50):
        self.prompts = sample_geneval_prompts(seed, n_per_tag)

    def __len__(self):
        return len(self.prompts)

    def __getitem__(self, i):
        return self.prompts[i]
