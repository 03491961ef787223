"""Generation benchmarks: GenEval's exact folder layout and scorer hand-off, the exact
shapes-GenEval scorer (ground truth = 100 %, random tokens far lower); MJHQ FID is in
test_fid.py."""
import json
import os

import numpy as np
import pytest
import torch

from unimm.apis.tiny_lm import make_tiny_lm
from unimm.datasets.shapes import render, sample_geneval_prompts, scene_from_prompt
from unimm.datasets.transforms import pil_to_tensor
from unimm.evaluation.geneval import GenEvalEvaluator, read_metadata, summarize
from unimm.evaluation.mjhq import MJHQEvaluator
from unimm.evaluation.shapes_geneval import ShapesGenEvalEvaluator, score_images
from unimm.registry import MODELS

# the first three lines of GenEval's prompts/evaluation_metadata.jsonl (MIT licence)
GENEVAL_METADATA = os.path.join(os.path.dirname(__file__), 'data', 'geneval_metadata_head.jsonl')


class RenderingModel:
    """Stands in for a GenerationMLLM: 'generates' a shapes render whose colour depends on
    the caption's length and the seed, so calls are distinguishable."""

    def __init__(self):
        self.calls = []

    def parameters(self):
        yield torch.zeros(1)

    def generate_images(self, captions, seed=0, batch_size=None, **sampling):
        self.calls.append((len(captions), seed, sampling))
        rng = np.random.default_rng(seed)
        spec = {'include': [{'class': 'circle', 'count': 1}]}
        return torch.stack([pil_to_tensor(render(scene_from_prompt(spec, rng), 64))
                            for _ in captions])


def test_geneval_layout_is_exactly_genevals(tmp_path, capsys):
    model = RenderingModel()
    evaluator = GenEvalEvaluator(GENEVAL_METADATA, n_samples=4, batch_size=6, limit=3,
                                 sampling=dict(cfg_scale=2.0))
    result = evaluator(model, work_dir=str(tmp_path))
    outdir = tmp_path / 'geneval'
    assert sorted(os.listdir(outdir)) == ['00000', '00001', '00002']
    lines = [line for line, _ in read_metadata(GENEVAL_METADATA)[:3]]
    for k in range(3):
        folder = outdir / f'{k:05d}'
        assert sorted(os.listdir(folder)) == ['metadata.jsonl', 'samples']
        assert sorted(os.listdir(folder / 'samples')) == [f'{s:04d}.png' for s in range(4)]
        assert (folder / 'metadata.jsonl').read_text() == lines[k] + '\n'
        json.loads((folder / 'metadata.jsonl').read_text())  # GenEval json.load()s it
    assert [c[:2] for c in model.calls] == [(6, 0), (6, 6)]
    assert model.calls[0][2] == {'cfg_scale': 2.0}
    assert result['num_images'] == 12 and 'git clone' in result['scorer']
    assert 'evaluate_images.py' in capsys.readouterr().err


def test_missing_metadata_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='djghosh13/geneval'):
        GenEvalEvaluator(str(tmp_path / 'none.jsonl'))(RenderingModel(), str(tmp_path))
    with pytest.raises(FileNotFoundError, match='MJHQ-30K'):
        MJHQEvaluator(str(tmp_path / 'meta.json'), str(tmp_path))(RenderingModel(),
                                                                  str(tmp_path))


def test_genevals_summary_averages_tasks():
    records = [{'tag': 'a', 'prompt': 'p', 'correct': True}, {'tag': 'a', 'prompt': 'p',
                                                             'correct': False},
               {'tag': 'b', 'prompt': 'q', 'correct': False}]
    s = summarize(records)
    assert s['tasks'] == {'a': 0.5, 'b': 0.0} and s['overall'] == 0.25
    assert s['correct_images'] == pytest.approx(1 / 3) and s['correct_prompts'] == 0.5


def test_shapes_geneval_scores_ground_truth_renders_perfectly():
    specs = sample_geneval_prompts(seed=1, n_per_tag=10)
    rng = np.random.default_rng(0)
    images = [pil_to_tensor(render(scene_from_prompt(s, rng, max_distractors=2), 64))
              for s in specs]
    result = summarize(score_images(specs, images))
    assert result['overall'] == 1.0 and set(result['tasks'].values()) == {1.0}
    assert len(result['tasks']) == 6


def test_random_token_baseline_is_far_below_ground_truth(demo_tokenizer, tmp_path):
    llm = make_tiny_lm(str(tmp_path / 'llm'), arch='qwen2', hidden_size=32,
                       num_hidden_layers=1, num_attention_heads=2)
    model = MODELS.build(dict(type='GenerationMLLM', llm=llm, image_tokenizer=demo_tokenizer))
    result = ShapesGenEvalEvaluator(n_per_tag=5, n_samples=2, generator='random_tokens')(model)
    assert result['num_images'] == 60 and result['overall'] < 0.2
    # the ceiling: correct scenes through this (briefly trained) tokenizer, same prompts
    ceiling = ShapesGenEvalEvaluator(n_per_tag=5, n_samples=2, generator='reconstruction')(model)
    assert ceiling['num_images'] == 60 and set(ceiling['tasks']) == set(result['tasks'])
