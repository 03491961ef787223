"""Compare the loss traces of training runs: python tools/compare_logs.py REF RUN [RUN ...]
[--keys loss ...] [--steps FIRST:LAST] [--rtol 0.02] [--json OUT]

REF and RUN are work dirs (their log.jsonl) or log.jsonl files. For every key (default:
the 'loss*' and 'disc/loss*' scalars both logs have) over the steps both logged (the last
record of a step wins: a resumed run repeats steps), it prints the largest relative
difference |run - ref| / max(|ref|, --floor) and where it occurs. Exit status 1 when a
difference exceeds --rtol or the runs share no step, so scripts can gate on it."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.compare_logs import compare_runs, parse_steps  # noqa: E402


def parse_args(argv=None):
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
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    ok = compare_runs(args.ref, args.runs, args.keys, args.steps, args.rtol, args.floor,
                      args.json)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
