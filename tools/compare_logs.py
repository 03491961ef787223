"""Compare the loss traces of training runs: python tools/compare_logs.py REF RUN [RUN ...]
[--keys loss ...] [--steps FIRST:LAST] [--rtol 0.02] [--json OUT]

REF and RUN are work dirs (their log.jsonl) or log.jsonl files. For every key (default:
the 'loss*' and 'disc/loss*' scalars both logs have) over the steps both logged (the last
record of a step wins: a resumed run repeats steps), it prints the largest relative
difference |run - ref| / max(|ref|, --floor) and where it occurs. Exit status 1 when a
difference exceeds --rtol or the runs share no step, so scripts can gate on it."""
import argparse
import json
import os
import sys


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
    first, _, last = text.partition(':')
    return (int(first) if first else 0, int(last) if last else 10**12)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('ref')
    p.add_argument('runs', nargs='+')
    p.add_argument('--keys', nargs='+', help="default: the 'loss*' and 'disc/loss*' scalars")
    p.add_argument('--steps', type=parse_steps, help='FIRST:LAST, inclusive (either may be empty)')
    p.add_argument('--rtol', type=float, default=0.02,
                   help='allowed relative difference (default 0.02: bf16 runs)')
    p.add_argument('--floor', type=float, default=1e-3,
                   help='denominator floor for losses near zero')
    p.add_argument('--json', help='also write the results here')
    args = p.parse_args(argv)
    ref = read_trace(args.ref)
    results, ok = [], True
    for path in args.runs:
        run = read_trace(path)
        keys = args.keys or loss_keys(ref, run)
        per_key = compare(ref, run, keys, args.steps, args.floor)
        worst = max((v['max_rel'] for v in per_key.values() if v['max_rel'] is not None),
                    default=None)
        passed = worst is not None and worst <= args.rtol
        ok &= passed
        results.append(dict(ref=args.ref, run=path, rtol=args.rtol, passed=passed,
                            max_rel=worst, keys=per_key))
        print(f"{'PASS' if passed else 'FAIL'} {path} vs {args.ref}: max relative difference "
              f"{worst if worst is None else f'{worst:.3g}'} (rtol {args.rtol})")
        for key, v in per_key.items():
            if v['steps']:
                print(f"    {key}: {v['steps']} steps ({v['first']}..{v['last']}), max rel "
                      f"{v['max_rel']:.3g} at step {v['at_step']}, max abs {v['max_abs']:.3g}")
            else:
                print(f'    {key}: no shared steps')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
