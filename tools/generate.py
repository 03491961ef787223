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

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from unimm.inference.generate import generate_images, sample_records, save_samples  # noqa: E402
from unimm.inference.sampler import SCHEDULES  # noqa: E402
from unimm.models.mllm.llm import load_exported  # noqa: E402


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


def read_prompts(args):
    if args.prompts is None:
        captions = [args.prompt]
    else:
        with open(args.prompts) as f:
            captions = [line.strip() for line in f if line.strip()]
    n = args.n or (4 if args.prompts is None else 1)
    return [c for c in captions for _ in range(n)]


def main(argv=None):
    args = parse_args(argv)
    prompts = read_prompts(args)
    model = load_exported(args.config, args.checkpoint)
    cuda = torch.cuda.is_available()
    model.to('cuda' if cuda else 'cpu').eval()
    if cuda or args.bf16:
        model.to(torch.bfloat16)
    sampling = dict(batch_size=args.batch_size, seed=args.seed, cfg_scale=args.cfg_scale,
                    cfg_schedule=args.cfg_schedule, temperature=args.temperature,
                    top_k=args.top_k, top_p=args.top_p, jacobi_window=args.jacobi_window)
    records = sample_records(prompts, **sampling)
    with tqdm(total=len(prompts), unit='image', desc='generating') as bar:
        images = generate_images(model, prompts, **sampling,
                                 progress=lambda done, total: bar.update(done - bar.n))
    paths = save_samples(images, records, args.out, grid_columns=args.grid_columns)
    print('\n'.join(paths))
    return paths


if __name__ == '__main__':
    main()
