"""The paper's Fig. 4 on the shapes world: patches that share a semantic code look alike.

    python tools/code_patches.py                      # both worlds, writes the page below
    python tools/code_patches.py --worlds textured128 --scenes 256

For each world the stage-1 SPC export (work_dirs/spc_<world>/export) encodes held-out
scenes; within-code against between-code patch distances, code purity and a figure of
frequent codes' patches (docs/images/spc_code_patches_<world>.png) go to
docs/fig4_code_patches.md, the numbers also to work_dirs/code_patches/results.json. The
SGHC export (work_dirs/sghc_<world>/export), where present, adds its full ids as a row.
A few minutes on a CPU (unimm/evaluation/code_patches.py has the method)."""
import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.code_patches import code_patches  # noqa: E402
from unimm.evaluation.code_patches import WORLDS  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--worlds', nargs='+', default=list(WORLDS), choices=list(WORLDS))
    p.add_argument('--scenes', type=int, default=512, help='held-out scenes per world')
    p.add_argument('--work-dirs', default='work_dirs',
                   help='where spc_<world>/export and sghc_<world>/export are')
    p.add_argument('--no-sghc', action='store_true', help='leave the SGHC exports out')
    p.add_argument('--doc', default='docs/fig4_code_patches.md')
    p.add_argument('--images', default='docs/images')
    p.add_argument('--json', default='work_dirs/code_patches/results.json')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    command = ' '.join(['python tools/code_patches.py'] + [shlex.quote(a) for a in (
        argv if argv is not None else sys.argv[1:])])
    return code_patches(args.worlds, args.scenes, args.work_dirs, not args.no_sghc, args.doc,
                        args.images, args.json, args.seed, command)


if __name__ == '__main__':
    main()
