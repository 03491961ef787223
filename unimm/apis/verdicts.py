"""Verdicts on the paper's ablation claims from runs repeated over training seeds: pure
functions of the per-seed numbers, used by the ablation report.

The rule. A row is a list of per-seed values of one metric. Two rows differ when their
seed means differ by more than ``K_SE`` (2) times the pooled standard error of the
difference of the means (the between-seed spread, pooled over both rows); otherwise they
tie. A row with fewer than two seeds has no spread: its comparisons are ``'undecided'``.
A claim is *reproduced* when every comparison it makes goes its way, *not reproduced*
when one is decided against it, else *inconclusive*.

Codebook usage is judged on counts, never on a share whose denominator grows with the
codebook: for the sub-codebook size m, the number of sub-codes in use per used semantic
code (``usage_subcodes * m``) and its share of m. The share falling from one m to the
next counts as evidence only where that count changed too; an equal count means the
added codes were never used, and the share fell by the denominator alone."""
import math
from collections import namedtuple

K_SE = 2.0  # a difference is decided beyond this many pooled standard errors

SeedStats = namedtuple('SeedStats', 'mean sd n')
Comparison = namedtuple('Comparison', 'outcome diff band')  # outcome of a vs b


def seed_stats(values):
    """Mean, sample standard deviation (0 for one seed) and number of seeds."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError('seed_stats: no values')
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return SeedStats(mean, sd, n)


def pooled_se(a, b):
    """Standard error of mean(a) - mean(b) with the seeds' variance pooled over both rows
    (``sp * sqrt(1/na + 1/nb)``); None when a row has a single seed."""
    sa, sb = seed_stats(a), seed_stats(b)
    if sa.n < 2 or sb.n < 2:
        return None
    pooled = ((sa.n - 1) * sa.sd ** 2 + (sb.n - 1) * sb.sd ** 2) / (sa.n + sb.n - 2)
    return math.sqrt(pooled) * math.sqrt(1 / sa.n + 1 / sb.n)


def compare(a, b, k=K_SE):
    """Row ``a`` against row ``b`` (per-seed values): 'higher' / 'lower' when the means
    differ by more than ``k`` pooled standard errors, 'tie' within, 'undecided' without
    two seeds in each row."""
    diff = seed_stats(a).mean - seed_stats(b).mean
    se = pooled_se(a, b)
    if se is None:
        return Comparison('undecided', diff, None)
    band = k * se
    return Comparison('higher' if diff > band else 'lower' if -diff > band else 'tie',
                      diff, band)


def verdict(outcomes, want):
    """'reproduced' when every outcome is one the claim wants, 'not reproduced' when one
    is decided ('higher' / 'lower') against it, else 'inconclusive'. ``want``: the wanted
    outcomes per comparison, a set when more than one counts (e.g. {'higher', 'tie'} for
    "is kept")."""
    if any(o in ('higher', 'lower') and o not in w for o, w in zip(outcomes, want)):
        return 'not reproduced'
    if all(o in w for o, w in zip(outcomes, want)):
        return 'reproduced'
    return 'inconclusive'


def mean_sd(values, digits=2):
    """'mean ± sd (n)' of per-seed values."""
    s = seed_stats(values)
    return f'{s.mean:.{digits}f} ± {s.sd:.{digits}f} ({s.n})'


def comparison_text(c, digits=2):
    band = 'no band: one seed' if c.band is None else f'band ±{c.band:.{digits}f}'
    return f'Δ {c.diff:+.{digits}f}, {band}: {c.outcome}'


def metric_claim(winner, others, higher_is_better=True, digits=2, name='value'):
    """(evidence text, verdict) of "``winner`` is better than each of ``others``" on one
    metric: ``winner`` a (label, per-seed values) pair, ``others`` {label: values};
    better is higher unless ``higher_is_better`` is False (rFID, LPIPS)."""
    label, values = winner
    want = {'higher' if higher_is_better else 'lower'}
    comparisons = {o: compare(values, v) for o, v in others.items()}
    text = f'{name} {label} {mean_sd(values, digits)} vs ' + '; '.join(
        f'{o} {mean_sd(others[o], digits)} ({comparison_text(c, digits)})'
        for o, c in comparisons.items())
    return text, verdict([c.outcome for c in comparisons.values()], [want] * len(others))


def kept_claim(row, reference, digits=3, name='value'):
    """(evidence, verdict) of "``row`` keeps ``reference``'s level" (not decided lower)."""
    (label, values), (ref_label, ref_values) = row, reference
    c = compare(values, ref_values)
    return (f'{name} {label} {mean_sd(values, digits)} vs {ref_label} '
            f'{mean_sd(ref_values, digits)} ({comparison_text(c, digits)})',
            verdict([c.outcome], [{'higher', 'tie'}]))


def subcodes_in_use(row):
    """Per seed, the mean number of sub-codes in use per used semantic code: the
    evaluator's ``usage_subcodes`` (a share of m) times m. ``row``: dict(m, usage_subcodes
    = per-seed shares)."""
    return [share * row['m'] for share in row['usage_subcodes']]


def usage_claim(rows, k=K_SE):
    """(evidence, verdict) of "codebook usage falls as the sub-codebook grows". ``rows``:
    dicts of m, usage_subcodes (per seed) and distinct_ids (per seed), in increasing m.

    Between consecutive m the share of sub-codes used per semantic code must fall
    (decided) and the count in use must have changed (decided, either way); a share that
    falls with an unchanged count is the denominator alone and leaves the claim
    inconclusive; a share that rises is against it."""
    outcomes, notes = [], []
    for a, b in zip(rows, rows[1:]):
        share = compare(b['usage_subcodes'], a['usage_subcodes'], k)
        count = compare(subcodes_in_use(b), subcodes_in_use(a), k)
        if share.outcome == 'lower' and count.outcome == 'tie':
            outcome = 'denominator only'
        elif share.outcome == 'lower' and count.outcome == 'undecided':
            outcome = 'undecided'
        else:
            outcome = share.outcome
        outcomes.append(outcome)
        notes.append(f"m {a['m']} -> {b['m']}: share {comparison_text(share, 3)}, "
                     f"count {comparison_text(count, 2)}")
    per_m = '; '.join(
        f"m = {r['m']}: {mean_sd(subcodes_in_use(r), 1)} of {r['m']} sub-codes per used "
        f"semantic code ({mean_sd([100 * s for s in r['usage_subcodes']], 1)} %), "
        f"{mean_sd(r['distinct_ids'], 0)} distinct ids" for r in rows)
    text = per_m + '. ' + '; '.join(notes)
    if 'denominator only' in outcomes and 'higher' not in outcomes:
        return text + '. The share fell with an unchanged count: the added codes were ' \
            'never used (the denominator alone)', 'inconclusive'
    return text, verdict(outcomes, [{'lower'}] * len(outcomes))
