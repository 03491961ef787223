"""Text about scenes: captions, VQA pairs and GenEval-style prompts.

Everything is a deterministic function of the scene (and, for caption templates and
prompt sampling, of a numpy Generator). Answers are single words or digits. Prompt dicts
mirror GenEval's evaluation_metadata.jsonl with shape kinds as classes.
"""
import copy
import itertools

import numpy as np

from .world import CLEAR, COLOURS, KINDS, OPPOSITE, RELATIONS, relative_position

NUMBERS = ('zero', 'one', 'two', 'three', 'four')
GENEVAL_TAGS = ('single_object', 'two_object', 'counting', 'colors', 'position', 'color_attr')
CAPTION_PREFIXES = ('', 'a photo of ', 'an image of ', 'a picture showing ')
RELATION_PHRASES = {'left of': 'to the left of', 'right of': 'to the right of',
                    'above': 'above', 'below': 'below'}


def noun_phrase(count, *words):
    """'a large red circle' / 'two large red circles' (the last word is the kind)."""
    *adjectives, kind = words
    head = 'a' if count == 1 else NUMBERS[count]
    return ' '.join([head, *adjectives, kind if count == 1 else kind + 's'])


def _join(phrases):
    return phrases[0] if len(phrases) == 1 else ', '.join(phrases[:-1]) + ' and ' + phrases[-1]


def _location(shape):
    """Coarse place of a shape in the image: 'in the top left', 'in the center', ..."""
    col = 'left' if shape.cx < 0.4 else 'right' if shape.cx > 0.6 else ''
    row = 'top' if shape.cy < 0.4 else 'bottom' if shape.cy > 0.6 else ''
    if row and col:
        return f'in the {row} {col}'
    return f'on the {col}' if col else f'at the {row}' if row else 'in the center'


def _clear_relation(a, b):
    """One clear relation of shape a to shape b (horizontal first), or None."""
    rels = relative_position(a.bbox, b.bbox, CLEAR)
    return next((r for r in RELATIONS if r in rels), None)


def _words(shape):
    """Size, colour, pattern family when textured, and kind: the words naming a shape."""
    pattern = (shape.pattern.family,) if shape.pattern is not None else ()
    return (shape.size, shape.colour, *pattern, shape.kind)


def caption(scene, rng=None, background=None):
    """English description: kind, colour, size (and pattern family) and count of every
    shape, plus where they are (one shape: its place; two: their relation; more:
    left-to-right order when it is clear), then the ``background`` pattern family if
    given. ``rng`` picks a prefix template and, for two shapes, the order of mention;
    without it the canonical form is returned."""
    shapes = sorted(scene, key=lambda s: s.cx)
    prefix = CAPTION_PREFIXES[int(rng.integers(len(CAPTION_PREFIXES)))] if rng is not None else ''
    groups = {}
    for s in shapes:
        groups.setdefault(_words(s), []).append(s)
    phrases = [noun_phrase(len(g), *key) for key, g in groups.items()]
    if len(shapes) == 1:
        body = f'{phrases[0]} {_location(shapes[0])}'
    elif len(shapes) == 2 and len(phrases) == 2 and _clear_relation(*shapes):
        order = [0, 1] if rng is None or rng.random() < 0.5 else [1, 0]
        rel = _clear_relation(shapes[order[0]], shapes[order[1]])
        body = f'{phrases[order[0]]} {RELATION_PHRASES[rel]} {phrases[order[1]]}'
    elif len(phrases) == len(shapes) > 2 and all(
            _clear_relation(a, b) == 'left of' for a, b in zip(shapes, shapes[1:])):
        body = _join(phrases) + ' from left to right'
    else:
        body = _join(phrases)
    if background is not None:
        body += f' on a {background.family} background'
    return prefix + body


def vqa_pairs(scene, background=None):
    """(question, answer) pairs about a scene, in a fixed order: counts; colour, shape
    and size (and pattern family, when textured) of uniquely named objects; the
    ``background`` pattern if given; existence (a yes and a no per distinct colour-kind
    pair); relative positions (clear ones only, alternating yes/no)."""
    kinds = [s.kind for s in scene]
    colours = [s.colour for s in scene]
    pairs = [('how many shapes are there?', str(len(scene)))]
    pairs += [(f'how many {k}s are there?', str(kinds.count(k))) for k in KINDS]
    pairs += [(f'what color is the {s.kind}?', s.colour) for s in scene if kinds.count(s.kind) == 1]
    pairs += [(f'what shape is the {s.colour} object?', s.kind)
              for s in scene if colours.count(s.colour) == 1]
    combos = [(s.colour, s.kind) for s in scene]
    named = [s for s in scene if combos.count((s.colour, s.kind)) == 1]
    pairs += [(f'what size is the {s.colour} {s.kind}?', s.size) for s in named]
    pairs += [(f'what pattern is the {s.colour} {s.kind}?', s.pattern.family)
              for s in named if s.pattern is not None]
    if background is not None:
        pairs.append(('what pattern is the background?', background.family))
    for colour, kind in dict.fromkeys(combos):
        pairs.append((f'is there a {colour} {kind}?', 'yes'))
        start = COLOURS.index(colour)
        absent = next(c for c in COLOURS[start + 1:] + COLOURS[:start] if (c, kind) not in combos)
        pairs.append((f'is there a {absent} {kind}?', 'no'))
    asked = 0
    for a, b in itertools.combinations(named, 2):
        rels = relative_position(a.bbox, b.bbox, CLEAR)
        for rel in [r for r in ('left of', 'above') if r in rels or OPPOSITE[r] in rels]:
            true_rel = rel if rel in rels else OPPOSITE[rel]
            said = true_rel if asked % 2 == 0 else OPPOSITE[true_rel]
            pairs.append((f'is the {a.colour} {a.kind} {RELATION_PHRASES[said]} the '
                          f'{b.colour} {b.kind}?', 'yes' if said == true_rel else 'no'))
            asked += 1
    return pairs


POPE_STRATEGIES = ('random', 'adversarial')


def pope_pairs(scene, rng, strategy='adversarial'):
    """POPE-style existence questions about a scene, balanced: 'is there a <colour>
    <kind>?' answered yes for every distinct colour-kind pair present, and as many absent
    pairs answered no, drawn with ``rng`` (a numpy Generator). ``strategy`` picks the
    negatives as POPE does its objects: ``'random'`` among all absent pairs; ``'adversarial'``
    first among absent pairs that share the kind or the colour of a present shape (a present
    kind in an absent colour, a present colour on an absent kind: what co-occurs with what
    is in the image), topped up at random when those run out. Yes and no questions are
    interleaved in a random order."""
    if strategy not in POPE_STRATEGIES:
        raise ValueError(f'pope_pairs: strategy must be one of {POPE_STRATEGIES}, '
                         f'got {strategy!r}')
    present = list(dict.fromkeys((s.colour, s.kind) for s in scene))
    absent = [(c, k) for k in KINDS for c in COLOURS if (c, k) not in present]
    near = [p for p in absent if any(p[0] == c or p[1] == k for c, k in present)]
    pools = [near, [p for p in absent if p not in near]] if strategy == 'adversarial' \
        else [absent]
    negatives = []
    for pool in pools:
        take = min(len(present) - len(negatives), len(pool))
        negatives += [pool[i] for i in rng.permutation(len(pool))[:take]]
    pairs = [(f'is there a {c} {k}?', 'yes') for c, k in present]
    pairs += [(f'is there a {c} {k}?', 'no') for c, k in negatives]
    return [pairs[i] for i in rng.permutation(len(pairs))]


def _prompt(tag, include, exclude=None):
    """A GenEval metadata dict; the prompt text is generated from ``include``."""
    words = [noun_phrase(req['count'], *([req['color']] if 'color' in req else []), req['class'])
             for req in include]
    if tag == 'position':
        text = f"{words[1]} {include[1]['position'][0]} {words[0]}"
    else:
        text = ' and '.join(words)
    spec = {'tag': tag, 'include': include}
    if exclude:
        spec['exclude'] = exclude
    spec['prompt'] = 'a photo of ' + text
    return spec


def all_geneval_prompts(tag):
    """Every distinct prompt of one GenEval category, in a fixed order."""
    kind_pairs = list(itertools.permutations(KINDS, 2))
    if tag == 'single_object':
        return [_prompt(tag, [{'class': k, 'count': 1}]) for k in KINDS]
    if tag == 'two_object':
        return [_prompt(tag, [{'class': a, 'count': 1}, {'class': b, 'count': 1}])
                for a, b in kind_pairs]
    if tag == 'counting':
        return [_prompt(tag, [{'class': k, 'count': n}], [{'class': k, 'count': n + 1}])
                for k in KINDS for n in (2, 3, 4)]
    if tag == 'colors':
        return [_prompt(tag, [{'class': k, 'count': 1, 'color': c}])
                for k in KINDS for c in COLOURS]
    if tag == 'position':
        return [_prompt(tag, [{'class': b, 'count': 1},
                              {'class': a, 'count': 1, 'position': [rel, 0]}])
                for a, b in kind_pairs for rel in OPPOSITE]
    if tag == 'color_attr':
        return [_prompt(tag, [{'class': a, 'count': 1, 'color': ca},
                              {'class': b, 'count': 1, 'color': cb}])
                for a, b in kind_pairs for ca, cb in itertools.permutations(COLOURS, 2)]
    raise ValueError(f'unknown GenEval tag {tag!r}; expected one of {GENEVAL_TAGS}')


def sample_geneval_prompts(seed=0, n_per_tag=50, tags=GENEVAL_TAGS):
    """``n_per_tag`` prompts per tag, deterministic in ``seed``: a shuffled pass over a
    tag's distinct prompts, repeated when it has fewer than ``n_per_tag``."""
    rng = np.random.default_rng(seed)
    prompts = []
    for tag in tags:
        pool = all_geneval_prompts(tag)
        order = np.concatenate([rng.permutation(len(pool))
                                for _ in range(-(-n_per_tag // len(pool)))])
        prompts += [copy.deepcopy(pool[i]) for i in order[:n_per_tag]]
    return prompts
