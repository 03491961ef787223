"""Shapes-world versions of the paper's ablations (Tab. 4 and Tab. 5), written to
docs/ablations.md (see unimm/apis/ablate.py).

    python tools/ablate.py                                   # both tables (docs/ablations.md)
    python tools/ablate.py --tables 5                        # one table
    python tools/ablate.py --quick --work-dir /tmp/abl       # seconds: tiny steps and sets

Rows with the same resolved config train once; a rerun skips what results.json holds and a
killed training resumes from its last checkpoint. Needs the demo teacher (--teacher)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.ablate import TABLES, TEACHER, ablate  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tables', nargs='+', choices=sorted(TABLES), default=sorted(TABLES))
    p.add_argument('--quick', action='store_true', help='tiny steps and sets (tests)')
    p.add_argument('--work-dir', help='runs and results.json; default work_dirs/ablations '
                   '(work_dirs/ablations_quick with --quick)')
    p.add_argument('--out', help='the report; default docs/ablations.md (WORK_DIR/'
                   'ablations.md with --quick)')
    p.add_argument('--teacher', default=TEACHER, help='the demo teacher export')
    return p.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return ablate(args.tables, args.quick, args.work_dir, args.out, args.teacher,
                  command=' '.join(['python tools/ablate.py'] + list(argv)))


if __name__ == '__main__':
    main()
