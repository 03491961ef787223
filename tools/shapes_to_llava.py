"""Write shapes-world scenes as a LLaVA dataset on disk (PNG images + LLaVA JSON), the
format of LLaVA-Pretrain-558K (--kind caption) and LLaVA-v1.5-mix-665K (--kind vqa):

python tools/shapes_to_llava.py --out data/shapes_llava --kind vqa --start 0 --scenes 1000

Train on it with LLaVADataset(data_path=OUT/shapes_vqa.json, image_folder=OUT)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.shapes_to_llava import shapes_to_llava  # noqa: E402
from unimm.datasets.llava import ShapesLLaVADataset  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--out', required=True)
    p.add_argument('--kind', default='vqa', choices=ShapesLLaVADataset.KINDS)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--resolution', type=int, default=64)
    p.add_argument('--start', type=int, default=0)
    p.add_argument('--scenes', type=int, default=1000)
    p.add_argument('--turns', type=int, default=8, help='VQA turns per conversation')
    args = p.parse_args(argv)
    shapes_to_llava(args.out, args.kind, args.seed, args.resolution, args.start, args.scenes,
                    args.turns)


if __name__ == '__main__':
    main()
