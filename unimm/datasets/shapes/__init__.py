"""The shapes world: a deterministic synthetic image world (flat or textured) with captions,
VQA pairs, GenEval-style prompts and an exact pixel scorer (see docs/shapes_world.md)."""
from .scorer import (DetectedShape, background_pattern, classify_pattern, parse_image,
                     score_caption_attributes, score_prompt)
from .text import (GENEVAL_TAGS, POPE_STRATEGIES, all_geneval_prompts, caption, pope_pairs,
                   sample_geneval_prompts, vqa_pairs)
from .world import (BACKGROUND, COLOURS, KINDS, PALETTE, PATTERNS, SIZES, Pattern, Shape,
                    ShapesWorld, region_map, relative_position, render, sample_pattern,
                    sample_scene, scene_from_prompt)

__all__ = [
    'BACKGROUND', 'COLOURS', 'DetectedShape', 'GENEVAL_TAGS', 'KINDS', 'PALETTE', 'PATTERNS',
    'POPE_STRATEGIES', 'Pattern', 'SIZES', 'Shape', 'ShapesWorld', 'all_geneval_prompts', 'background_pattern',
    'caption', 'classify_pattern', 'parse_image', 'pope_pairs', 'region_map', 'relative_position', 'render',
    'sample_geneval_prompts', 'sample_pattern', 'sample_scene', 'scene_from_prompt',
    'score_caption_attributes', 'score_prompt', 'vqa_pairs',
]
