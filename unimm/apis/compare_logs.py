"""Compare the loss traces of training runs (behind tools/compare_logs.py): for every key
over the steps two logs share (the last record of a step wins: a resumed run repeats
steps), the largest relative difference |run - ref| / max(|ref|, floor) and where it
occurs."""
import json
import os


def read_trace(path):
    """{step: {key: value}} of a work dir's log.jsonl (scalar records only)."""
    if os.path.isdir(path):
        path = os.path.join(path, 'log.jsonl')
    trace = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if 'event' in rec or 'step' not in rec:
                continue
            trace[int(rec['step'])] = {k: v for k, v in rec.items()
                                       if isinstance(v, (int, float)) and k not in ('step', 'time')}
    return trace


def loss_keys(*traces):
    keys = None
    for trace in traces:
        here = {k for rec in trace.values() for k in rec
                if k.startswith('loss') or k.startswith('disc/loss')}
        keys = here if keys is None else keys & here
    return sorted(keys or ())


def compare(ref, run, keys, steps=None, floor=1e-3):
    """{key: dict(steps, max_rel, at_step, max_abs)} over the steps both traces have."""
    shared = sorted(set(ref) & set(run))
    if steps is not None:
        shared = [s for s in shared if steps[0] <= s <= steps[1]]
    out = {}
    for key in keys:
        pairs = [(s, ref[s][key], run[s][key]) for s in shared if key in ref[s] and key in run[s]]
        if not pairs:
            out[key] = dict(steps=0, max_rel=None, at_step=None, max_abs=None)
            continue
        rel = [(abs(b - a) / max(abs(a), floor), s) for s, a, b in pairs]
        worst, at = max(rel)
        out[key] = dict(steps=len(pairs), first=pairs[0][0], last=pairs[-1][0],
                        max_rel=worst, at_step=at,
                        max_abs=max(abs(b - a) for _, a, b in pairs))
    return out


def parse_steps(text):
    """'FIRST:LAST' (either may be empty) -> (first, last), inclusive."""
    first, _, last = text.partition(':')
    return (int(first) if first else 0, int(last) if last else 10**12)


def compare_runs(ref, runs, keys=None, steps=None, rtol=0.02, floor=1e-3, json_path=None):
    """Compare each run's trace with ``ref``'s, print a verdict per run and the largest
    difference per key, write the results to ``json_path`` if given; True when every run
    stays within ``rtol`` (and shares steps with ``ref``)."""
    ref_trace = read_trace(ref)
    results, ok = [], True
    for path in runs:
        run = read_trace(path)
        per_key = compare(ref_trace, run, keys or loss_keys(ref_trace, run), steps, floor)
        worst = max((v['max_rel'] for v in per_key.values() if v['max_rel'] is not None),
                    default=None)
        passed = worst is not None and worst <= rtol
        ok &= passed
        results.append(dict(ref=ref, run=path, rtol=rtol, passed=passed, max_rel=worst,
                            keys=per_key))
        print(f"{'PASS' if passed else 'FAIL'} {path} vs {ref}: max relative difference "
              f"{worst if worst is None else f'{worst:.3g}'} (rtol {rtol})")
        for key, v in per_key.items():
            if v['steps']:
                print(f"    {key}: {v['steps']} steps ({v['first']}..{v['last']}), max rel "
                      f"{v['max_rel']:.3g} at step {v['at_step']}, max abs {v['max_abs']:.3g}")
            else:
                print(f'    {key}: no shared steps')
    if json_path:
        with open(json_path, 'w') as f:
            json.dump(results, f, indent=2)
    return ok

