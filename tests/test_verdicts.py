"""The ablation verdict rule on hand-made per-seed numbers: seed-spread tie bands, claims
and the usage rule that never takes a growing denominator as evidence."""
import math

import pytest

from unimm.apis.verdicts import (K_SE, compare, kept_claim, metric_claim, pooled_se,
                                 seed_stats, usage_claim, verdict)


def test_seed_stats_and_pooled_standard_error():
    s = seed_stats([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.sd == 1.0 and s.n == 3
    assert seed_stats([5.0]).sd == 0.0
    # equal spreads: sp = 1, se = sqrt(1/3 + 1/3)
    assert pooled_se([1, 2, 3], [4, 5, 6]) == pytest.approx(math.sqrt(2 / 3))
    # pooled by degrees of freedom: (2*1 + 1*4.5) / 3
    assert pooled_se([1, 2, 3], [0, 3]) == pytest.approx(
        math.sqrt(6.5 / 3) * math.sqrt(1 / 3 + 1 / 2))
    assert pooled_se([1.0], [1.0, 2.0]) is None


def test_difference_within_the_band_is_a_tie_beyond_it_decided():
    a, b = [30.0, 30.4, 30.2], [29.9, 30.3, 30.1]  # means 30.2 vs 30.1, sd 0.2 each
    band = K_SE * 0.2 * math.sqrt(2 / 3)
    c = compare(a, b)
    assert c.outcome == 'tie' and c.band == pytest.approx(band)
    assert c.diff == pytest.approx(0.1)
    far = [31.0, 31.4, 31.2]
    assert compare(far, b).outcome == 'higher' and compare(b, far).outcome == 'lower'
    assert compare([30.5], b).outcome == 'undecided'  # one seed: no spread, no decision
    # identical seeds (no spread): any difference is decided
    assert compare([2, 2, 2], [1, 1, 1]).outcome == 'higher'


def test_verdict_rule():
    assert verdict(['higher', 'higher'], [{'higher'}] * 2) == 'reproduced'
    assert verdict(['higher', 'tie'], [{'higher'}] * 2) == 'inconclusive'
    assert verdict(['higher', 'lower'], [{'higher'}] * 2) == 'not reproduced'
    assert verdict(['undecided'], [{'higher'}]) == 'inconclusive'
    assert verdict(['tie'], [{'higher', 'tie'}]) == 'reproduced'


def test_metric_claims():
    sghc = ('SGHC', [33.0, 33.2, 33.1])
    _, v = metric_claim(sghc, {'SPC': [29.0, 29.3, 29.1], 'joint': [31.0, 31.2, 30.9]})
    assert v == 'reproduced'
    _, v = metric_claim(sghc, {'SPC': [29.0, 29.3, 29.1], 'joint': [33.1, 33.0, 33.2]})
    assert v == 'inconclusive'  # beats SPC, ties joint
    # rFID: lower is better
    text, v = metric_claim(('SGHC', [1.2, 1.3, 1.25]), {'SPC': [2.7, 2.8, 2.6]},
                           higher_is_better=False, name='rFID')
    assert v == 'reproduced' and text.startswith('rFID SGHC 1.25 ± 0.05 (3)')
    _, v = metric_claim(('SGHC', [3.0, 3.1, 3.2]), {'SPC': [2.7, 2.8, 2.6]},
                        higher_is_better=False)
    assert v == 'not reproduced'
    # kept: a tie or better
    assert kept_claim(('SGHC', [0.80, 0.82, 0.81]), ('SPC', [0.81, 0.80, 0.82]))[1] == \
        'reproduced'
    assert kept_claim(('SGHC', [0.70, 0.71, 0.72]), ('SPC', [0.81, 0.80, 0.82]))[1] == \
        'not reproduced'


def usage_rows(used):
    """Rows for m = 8, 12, 16 from per-seed counts of sub-codes used per semantic code."""
    return [dict(m=m, usage_subcodes=[u / m for u in counts],
                 distinct_ids=[280 * u / counts[0] for u in counts])
            for m, counts in zip((8, 12, 16), used)]


def test_usage_equal_counts_with_growing_m_is_not_reproduced():
    # ~7 sub-codes in use per semantic code at every m: the share falls 88% -> 58% -> 44%
    # only because m grows
    text, v = usage_claim(usage_rows([[7.0, 7.1, 6.9], [7.05, 6.95, 7.0], [7.0, 7.0, 7.1]]))
    assert v == 'inconclusive' and 'denominator alone' in text
    assert 'distinct ids' in text


def test_usage_claim_on_counts():
    # more sub-codes in use as m grows, but a smaller share of them: the paper's claim
    grows = usage_rows([[7.7, 7.8, 7.7], [11.2, 11.3, 11.1], [12.6, 12.8, 12.7]])
    assert usage_claim(grows)[1] == 'reproduced'
    # every sub-code in use at every m: the shares tie, nothing decided either way
    full = usage_rows([[7.9, 8.0, 7.95], [11.9, 11.95, 11.92], [15.9, 15.95, 15.92]])
    assert usage_claim(full)[1] == 'inconclusive'
    assert 'denominator' not in usage_claim(full)[0]
    # the share rises with m: not reproduced
    rises = usage_rows([[4.0, 4.1, 4.0], [9.0, 9.1, 9.0], [14.0, 14.1, 14.2]])
    assert usage_claim(rises)[1] == 'not reproduced'
    # one seed: nothing decided
    one = [dict(r, usage_subcodes=r['usage_subcodes'][:1], distinct_ids=r['distinct_ids'][:1])
           for r in grows]
    assert usage_claim(one)[1] == 'inconclusive'
