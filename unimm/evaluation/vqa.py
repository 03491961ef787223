"""Held-out shapes-VQA accuracy of an understanding model: greedy one-word answers,
exact match, by question type, next to two references: chance (a uniform guess among the
answers seen for the question's type) and the blind baseline (the most frequent answer of
each type: what a model that ignores the image can reach). ``ShapesPOPEEvaluator`` scores
the POPE-style yes/no task (``ShapesPOPEDataset``) as POPE does: accuracy, precision,
recall and F1 of 'yes', and the share of yes answers."""
from collections import Counter, defaultdict

import torch

from unimm.registry import DATASETS, METRICS

QUESTION_TYPES = ('how many', 'what color', 'what shape', 'what size', 'is there', 'is the')


def question_type(question):
    return next((t for t in QUESTION_TYPES if question.startswith(t)), 'other')


def references(questions, answers):
    """(chance, blind baseline): a uniform guess among each type's answers, and always
    answering each type's most frequent answer."""
    by_type = defaultdict(Counter)
    for q, a in zip(questions, answers):
        by_type[question_type(q)][a] += 1
    n = max(len(answers), 1)
    chance = sum(sum(c.values()) / len(c) for c in by_type.values()) / n
    blind = sum(c.most_common(1)[0][1] for c in by_type.values()) / n
    return chance, blind


@METRICS.register_module()
class ShapesVQAEvaluator:
    """``dataset``: a ``ShapesVQADataset`` of held-out scenes (one item per question)."""

    def __init__(self, dataset, batch_size=32, max_new_tokens=4, max_questions=None):
        self.dataset = DATASETS.build(dataset, path='dataset')
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.max_questions = max_questions

    @torch.no_grad()
    def answer(self, model):
        """(questions, true answers, greedy predictions) of the first questions."""
        n = len(self.dataset) if self.max_questions is None else \
            min(self.max_questions, len(self.dataset))
        questions, answers, preds = [], [], []
        for start in range(0, n, self.batch_size):
            items = [self.dataset[i] for i in range(start, min(start + self.batch_size, n))]
            convs = [model.single_turn(it['question']) for it in items]
            images = torch.stack([it['image'] for it in items])
            preds += model.generate(convs, images, max_new_tokens=self.max_new_tokens)
            questions += [it['question'] for it in items]
            answers += [it['answer'] for it in items]
        return questions, answers, preds

    def __call__(self, model, work_dir=None):
        questions, answers, preds = self.answer(model)
        n = len(questions)
        hits = [p.strip().lower() == a for p, a in zip(preds, answers)]
        per_type = defaultdict(list)
        for q, h in zip(questions, hits):
            per_type[question_type(q)].append(h)
        chance, blind = references(questions, answers)
        return {'accuracy': sum(hits) / max(n, 1), 'chance': chance, 'blind_baseline': blind,
                'num_questions': n,
                'accuracy_by_type': {t: sum(v) / len(v) for t, v in sorted(per_type.items())},
                'examples': [{'question': q, 'answer': a, 'prediction': p}
                             for q, a, p in list(zip(questions, answers, preds))[:10]]}


def yes_no(text):
    """'yes' / 'no' when a generated answer starts with that word (any case, punctuation
    after it allowed), else None (unparsed: counted wrong)."""
    words = text.strip().lower().split()
    word = words[0].strip('.,!?;:') if words else ''
    return word if word in ('yes', 'no') else None


def pope_scores(predictions, answers):
    """POPE's metrics of generated ``predictions`` against 'yes' / 'no' ``answers``: accuracy,
    precision, recall and F1 with 'yes' the positive class, the share of 'yes' predictions
    (0.5 for an unbiased model on a balanced set) and the share not parsable as yes / no.
    Precision is 0 when nothing was answered yes."""
    parsed = [yes_no(p) for p in predictions]
    tp = sum(p == a == 'yes' for p, a in zip(parsed, answers))
    fp = sum(p == 'yes' and a == 'no' for p, a in zip(parsed, answers))
    positives = sum(a == 'yes' for a in answers)
    n = max(len(answers), 1)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {'accuracy': sum(p == a for p, a in zip(parsed, answers)) / n,
            'precision': precision, 'recall': recall, 'f1': f1,
            'yes_ratio': sum(p == 'yes' for p in parsed) / n,
            'unparsed': sum(p is None for p in parsed) / n, 'num_questions': len(answers)}


@METRICS.register_module()
class ShapesPOPEEvaluator(ShapesVQAEvaluator):
    """``dataset``: a ``ShapesPOPEDataset`` of held-out scenes; greedy answers scored by
    ``pope_scores``, with a few examples."""

    def __call__(self, model, work_dir=None):
        questions, answers, preds = self.answer(model)
        return dict(pope_scores(preds, answers), examples=[
            {'question': q, 'answer': a, 'prediction': p}
            for q, a, p in list(zip(questions, answers, preds))[:10]])


def markdown_table(rows):
    """Lines of a markdown table of (name, ShapesVQAEvaluator result) rows: accuracy,
    chance, blind baseline and accuracy per question type."""
    types = sorted({t for _, r in rows for t in r['accuracy_by_type']})
    lines = ['| vision features | accuracy | chance | blind baseline | '
             + ' | '.join(types) + ' |', '| --- ' * (4 + len(types)) + '|']
    for name, r in rows:
        by_type = ' | '.join(f"{r['accuracy_by_type'].get(t, float('nan')):.3f}" for t in types)
        lines.append(f"| {name} | {r['accuracy']:.3f} | {r['chance']:.3f} | "
                     f"{r['blind_baseline']:.3f} | {by_type} |")
    return lines + ['', f"{rows[0][1]['num_questions']} held-out questions per run."]
