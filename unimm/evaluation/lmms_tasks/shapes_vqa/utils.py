"""lmms-eval hooks of the shapes-VQA tasks: documents hold a scene index (images are
rendered from the deterministic shapes world, no files) and a one-word answer.

Regenerate the test file: python -m unimm.evaluation.lmms_tasks.shapes_vqa.utils"""
import json
import os

from unimm.datasets.shapes import ShapesWorld

TEST_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'shapes_vqa_test.json')


def doc_to_visual(doc):
    return [ShapesWorld(doc['seed'], doc['resolution']).image(doc['index']).convert('RGB')]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc['question']


def process_results(doc, results):
    return {'exact_match': float(results[0].strip().lower() == doc['answer'])}


def yes_no_docs(dataset):
    return dataset.filter(lambda doc: doc['answer'] in ('yes', 'no'))


def write_test_file(path=TEST_FILE, seed=0, resolution=64, start=100000, scenes=60):
    """Held-out scenes (the training configs use scenes 0..49999) as one row per question."""
    world = ShapesWorld(seed, resolution)
    rows = [{'seed': seed, 'resolution': resolution, 'index': i, 'question': q, 'answer': a}
            for i in range(start, start + scenes) for q, a in world.vqa(i)]
    with open(path, 'w') as f:
        json.dump(rows, f, indent=0)
    return len(rows)


if __name__ == '__main__':
    print(f'wrote {write_test_file()} questions to {TEST_FILE}')
