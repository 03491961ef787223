"""Generate images from captions with a trained text-to-image or unified model:

python tools/generate.py CONFIG CHECKPOINT --prompts prompts.txt --out DIR [--n 1]
python tools/generate.py CONFIG CHECKPOINT --prompt "a photo of a red circle" --n 4

CHECKPOINT is an exported GenerationMLLM or UnifiedMLLM folder (<work_dir>/export); a
prompt file holds one caption a line (blank lines skipped). Each caption is drawn --n
times, in batches of --batch-size, by the fast CFG sampler (unimm.inference.generate_images).
Writes to DIR: <prompt slug>_<k>.png per image, grid.png, and samples.jsonl (one line per
image: its file, prompt, the seed of its batch and its row there, and the settings). The
same prompts, batch size and seed give the same images."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.generate import generate, read_prompts  # noqa: E402
from unimm.inference.sampler import SCHEDULES  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint', help='an exported model folder, e.g. work_dirs/NAME/export')
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument('--prompt', help="one caption ('' for unconditional)")
    source.add_argument('--prompts', help='a text file, one caption a line')
    p.add_argument('--n', type=int, default=None,
                   help='images per caption (default: 4 with --prompt, 1 with --prompts)')
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--out', default='outputs/generate')
    p.add_argument('--cfg-scale', type=float, default=4.0)
    p.add_argument('--cfg-schedule', default='constant', choices=SCHEDULES)
    p.add_argument('--temperature', type=float, default=1.0)
    p.add_argument('--top-k', type=int, default=0)
    p.add_argument('--top-p', type=float, default=1.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--jacobi-window', type=int, default=None,
                   help='speculative Jacobi decoding with this window (up to W tokens per '
                        'forward pass, the same distribution; each prompt alone, batch 1)')
    p.add_argument('--grid-columns', type=int, default=8)
    p.add_argument('--bf16', action='store_true', help='run in bfloat16 (default on CUDA)')
    return p.parse_args(argv)


def main(argv=None):
    args = vars(parse_args(argv))
    prompts = read_prompts(args.pop('prompt'), args.pop('prompts'), args.pop('n'))
    return generate(args.pop('config'), args.pop('checkpoint'), prompts, **args)


if __name__ == '__main__':
    main()
