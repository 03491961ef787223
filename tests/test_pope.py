"""The POPE-style yes/no task on the shapes world: balanced questions with adversarial or
random negatives, scored as POPE (accuracy, precision, recall, F1, yes ratio)."""
import json
import os

import numpy as np
import pytest

from unimm.datasets.shapes import COLOURS, KINDS, Shape, ShapesWorld, pope_pairs
from unimm.evaluation.lmms_tasks.shapes_vqa import utils
from unimm.evaluation.vqa import pope_scores, yes_no
from unimm.registry import DATASETS, METRICS

SCENE = [Shape('circle', 'red', 'small', 0.2, 0.2), Shape('circle', 'blue', 'small', 0.5, 0.5),
         Shape('square', 'red', 'large', 0.8, 0.8), Shape('square', 'red', 'small', 0.2, 0.8)]
PRESENT = {('red', 'circle'), ('blue', 'circle'), ('red', 'square')}


def parse(question):
    colour, kind = question[len('is there a '):-1].split()
    return colour, kind


@pytest.mark.parametrize('strategy', ['adversarial', 'random'])
def test_pairs_are_balanced_and_true(strategy):
    pairs = pope_pairs(SCENE, np.random.default_rng(0), strategy)
    yes = {parse(q) for q, a in pairs if a == 'yes'}
    no = [parse(q) for q, a in pairs if a == 'no']
    assert yes == PRESENT and len(no) == len(set(no)) == 3
    assert not set(no) & PRESENT
    assert all(c in COLOURS and k in KINDS for c, k in no)


def test_adversarial_negatives_share_a_colour_or_kind_with_the_image():
    for seed in range(20):
        no = [parse(q) for q, a in pope_pairs(SCENE, np.random.default_rng(seed)) if a == 'no']
        assert all(c in {'red', 'blue'} or k in {'circle', 'square'} for c, k in no)
    # random negatives reach pairs sharing neither (e.g. a green triangle) on some draws
    drawn = {parse(q) for s in range(50) for q, a in
             pope_pairs(SCENE, np.random.default_rng(s), 'random') if a == 'no'}
    assert any(c not in {'red', 'blue'} and k not in {'circle', 'square'} for c, k in drawn)
    with pytest.raises(ValueError):
        pope_pairs(SCENE, np.random.default_rng(0), 'popular')


def test_scores_as_pope():
    assert [yes_no(t) for t in ('Yes.', ' no', 'yes, it is', 'maybe', '')] == \
        ['yes', 'no', 'yes', None, None]
    s = pope_scores(['Yes.', 'no', 'yes', 'maybe'], ['yes', 'yes', 'no', 'no'])
    # TP = 1 (first), FP = 1 (third); one unparsed answer counts wrong
    assert s['accuracy'] == 0.25 and s['precision'] == 0.5 and s['recall'] == 0.5
    assert s['f1'] == 0.5 and s['yes_ratio'] == 0.5 and s['unparsed'] == 0.25
    never = pope_scores(['no', 'no'], ['yes', 'no'])
    assert never['precision'] == 0.0 and never['f1'] == 0.0 and never['accuracy'] == 0.5


class AlwaysYes:
    """A model that answers yes to everything."""

    def single_turn(self, question):
        return question

    def generate(self, convs, images, max_new_tokens=4):
        return ['yes'] * len(convs)


def test_evaluator_on_a_model_that_always_says_yes():
    ds = dict(type='ShapesPOPEDataset', resolution=32, start=100000, length=10)
    dataset = DATASETS.build(ds)
    answers = [dataset[k]['answer'] for k in range(len(dataset))]
    assert answers.count('yes') == answers.count('no') > 0
    world = ShapesWorld(0, 32)
    for k in range(len(dataset)):  # the yes questions name a pair in the scene
        item = dataset[k]
        present = {(s.colour, s.kind) for s in world.scene(item['index'])}
        assert (parse(item['question']) in present) == (item['answer'] == 'yes')
    res = METRICS.build(dict(type='ShapesPOPEEvaluator', dataset=ds, batch_size=4))(AlwaysYes())
    assert res['accuracy'] == 0.5 and res['recall'] == 1.0 and res['precision'] == 0.5
    assert res['yes_ratio'] == 1.0 and res['num_questions'] == len(dataset)


def test_lmms_aggregation_is_pope_scores():
    docs = [{'answer': a} for a in ('yes', 'yes', 'no', 'no')]
    preds = ['Yes.', 'no', 'yes', 'maybe']
    items = [utils.process_results_pope(d, [p]) for d, p in zip(docs, preds)]
    want = pope_scores(preds, [d['answer'] for d in docs])
    for metric in ('accuracy', 'precision', 'recall', 'f1', 'yes_ratio'):
        agg = getattr(utils, f'pope_aggregate_{metric}')
        assert agg([it[f'pope_{metric}'] for it in items]) == want[metric]


def test_test_files_are_the_held_out_pope_questions():
    for name, (world, questions) in utils.TEST_FILES.items():
        rows = json.load(open(os.path.join(utils.HERE, name)))
        w = ShapesWorld(0, world['resolution'], texture=world['texture'])
        first = [r for r in rows if r['index'] == rows[0]['index']]
        want = w.pope(rows[0]['index']) if questions == 'pope' else w.vqa(rows[0]['index'])
        assert [(r['question'], r['answer']) for r in first] == want
        assert all(r['index'] >= 100000 and r['texture'] == world['texture'] for r in rows)
        if questions == 'pope':
            assert sum(r['answer'] == 'yes' for r in rows) * 2 == len(rows)
    doc = dict(rows[0])
    assert doc_size(doc) == (128, 128)


def doc_size(doc):
    return utils.doc_to_visual(doc)[0].size


def test_lmms_eval_finds_the_tasks():
    from lmms_eval.tasks import TaskManager
    from unimm.evaluation.lmms import TASKS_DIR
    names = set(TaskManager(include_path=TASKS_DIR).all_tasks)
    assert {'shapes_pope', 'shapes_pope_textured', 'shapes_vqa_textured'} <= names
