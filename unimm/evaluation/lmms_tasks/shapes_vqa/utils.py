"""lmms-eval hooks of the shapes-VQA tasks: documents hold a scene index (images are
rendered from the deterministic shapes world, flat or, with ``texture``, textured; no
files) and a one-word answer. The POPE-style tasks (``shapes_pope*``) hold balanced
yes/no existence questions and are scored as POPE (``unimm.evaluation.vqa.pope_scores``).

Regenerate the test files: python -m unimm.evaluation.lmms_tasks.shapes_vqa.utils"""
import json
import os

from unimm.datasets.shapes import ShapesWorld
from unimm.evaluation.vqa import pope_scores

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_FILE = os.path.join(HERE, 'shapes_vqa_test.json')
# (file, world, questions) of every test file: flat 64 px and textured 128 px worlds
TEST_FILES = {
    'shapes_vqa_test.json': (dict(resolution=64, texture=False), 'vqa'),
    'shapes_pope_test.json': (dict(resolution=64, texture=False), 'pope'),
    'shapes_vqa_textured_test.json': (dict(resolution=128, texture=True), 'vqa'),
    'shapes_pope_textured_test.json': (dict(resolution=128, texture=True), 'pope'),
}


def world_of(doc):
    return ShapesWorld(doc['seed'], doc['resolution'], texture=doc.get('texture', False))


def doc_to_visual(doc):
    return [world_of(doc).image(doc['index']).convert('RGB')]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc['question']


def process_results(doc, results):
    return {'exact_match': float(results[0].strip().lower() == doc['answer'])}


def yes_no_docs(dataset):
    return dataset.filter(lambda doc: doc['answer'] in ('yes', 'no'))


def process_results_pope(doc, results):
    """Every POPE metric gets the (prediction, answer) pair; the aggregations score the
    whole list at once."""
    pair = {'prediction': results[0], 'answer': doc['answer']}
    return {f'pope_{m}': pair for m in ('accuracy', 'precision', 'recall', 'f1', 'yes_ratio')}


def _aggregate(metric):
    def aggregate(items):
        return pope_scores([it['prediction'] for it in items],
                           [it['answer'] for it in items])[metric]
    aggregate.__name__ = f'pope_aggregate_{metric}'
    return aggregate


pope_aggregate_accuracy = _aggregate('accuracy')
pope_aggregate_precision = _aggregate('precision')
pope_aggregate_recall = _aggregate('recall')
pope_aggregate_f1 = _aggregate('f1')
pope_aggregate_yes_ratio = _aggregate('yes_ratio')


def write_test_file(path=TEST_FILE, seed=0, resolution=64, start=100000, scenes=60,
                    texture=False, questions='vqa'):
    """Held-out scenes (the training configs use scenes 0..49999) as one row per question:
    the VQA pairs (``questions='vqa'``) or the adversarial POPE pairs (``'pope'``)."""
    world = ShapesWorld(seed, resolution, texture=texture)
    pairs = world.vqa if questions == 'vqa' else world.pope
    rows = [{'seed': seed, 'resolution': resolution, 'texture': texture, 'index': i,
             'question': q, 'answer': a}
            for i in range(start, start + scenes) for q, a in pairs(i)]
    with open(path, 'w') as f:
        json.dump(rows, f, indent=0)
    return len(rows)


if __name__ == '__main__':
    for name, (world, questions) in TEST_FILES.items():
        n = write_test_file(os.path.join(HERE, name), questions=questions,
                            scenes=60 if questions == 'vqa' else 250, **world)
        print(f'wrote {n} questions to {name}')
