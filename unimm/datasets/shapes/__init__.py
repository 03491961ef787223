"""The shapes world: a deterministic synthetic image world with captions, VQA pairs,
GenEval-style prompts and an exact pixel scorer (see DESIGN.md, "The shapes world")."""
from .scorer import DetectedShape, parse_image, score_caption_attributes, score_prompt
from .text import (GENEVAL_TAGS, all_geneval_prompts, caption, sample_geneval_prompts,
                   vqa_pairs)
from .world import (BACKGROUND, COLOURS, KINDS, PALETTE, SIZES, Shape, ShapesWorld,
                    relative_position, render, sample_scene, scene_from_prompt)

__all__ = [
    'BACKGROUND', 'COLOURS', 'DetectedShape', 'GENEVAL_TAGS', 'KINDS', 'PALETTE', 'SIZES',
    'Shape', 'ShapesWorld', 'all_geneval_prompts', 'caption', 'parse_image', 'relative_position',
    'render', 'sample_geneval_prompts', 'sample_scene', 'scene_from_prompt',
    'score_caption_attributes', 'score_prompt', 'vqa_pairs',
]
