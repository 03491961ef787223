"""Peak host memory of the final export, per rank: python tools/export_memory.py
[--ranks 2] [--zero-stage 3] [--width 2048] [--depth 12] [--json OUT].

Launches the ranks on the CPU (torchrun, gloo), builds the runner on an MLP of ``depth``
[width x width] linear layers (the first one frozen) and calls its export. Each rank reports
how far its resident memory rose above what it held before the export (Linux: the peak
resident size, VmHWM, reset through /proc/self/clear_refs just before)."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.export_memory import export_memory  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--ranks', type=int, default=2)
    p.add_argument('--zero-stage', type=int, default=3)
    p.add_argument('--width', type=int, default=2048)
    p.add_argument('--depth', type=int, default=12)
    p.add_argument('--json', help='also write the result here')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = export_memory(args.ranks, args.width, args.depth, args.zero_stage)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == '__main__':
    main()
