"""Generate images from a caption with a trained text-to-image or unified model:

python tools/generate.py CONFIG CHECKPOINT --prompt "a photo of a red circle" --n 4

CHECKPOINT is an exported GenerationMLLM or UnifiedMLLM folder (<work_dir>/export). Writes
<out>/<prompt slug>_<k>.png, sampled with classifier-free guidance by the fast sampler."""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from unimm.evaluation.recon import to_uint8  # noqa: E402
from unimm.models.mllm.llm import load_exported  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint', help='an exported model folder, e.g. work_dirs/NAME/export')
    p.add_argument('--prompt', required=True, help="the caption ('' for unconditional)")
    p.add_argument('--n', type=int, default=4, help='images to generate')
    p.add_argument('--out', default='outputs/generate')
    p.add_argument('--cfg-scale', type=float, default=4.0)
    p.add_argument('--cfg-schedule', default='constant', choices=('constant', 'linear', 'cosine'))
    p.add_argument('--temperature', type=float, default=1.0)
    p.add_argument('--top-k', type=int, default=0)
    p.add_argument('--top-p', type=float, default=1.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--bf16', action='store_true', help='run in bfloat16 (default on CUDA)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model = load_exported(args.config, args.checkpoint)
    cuda = torch.cuda.is_available()
    model.to('cuda' if cuda else 'cpu').eval()
    if cuda or args.bf16:
        model.to(torch.bfloat16)
    images = model.generate_images([args.prompt] * args.n, cfg_scale=args.cfg_scale,
                                   cfg_schedule=args.cfg_schedule, temperature=args.temperature,
                                   top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    os.makedirs(args.out, exist_ok=True)
    slug = re.sub(r'[^a-z0-9]+', '_', args.prompt.lower()).strip('_')[:60] or 'unconditional'
    paths = []
    for k, array in enumerate(to_uint8(images).numpy()):
        paths.append(os.path.join(args.out, f'{slug}_{k}.png'))
        Image.fromarray(array).save(paths[-1])
    print('\n'.join(paths))
    return paths


if __name__ == '__main__':
    main()
