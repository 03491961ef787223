"""Benchmarks: python tools/benchmark.py WHAT [--batch N ...] [--json OUT].

train --config RECIPE [--batch B] [--seq S] [--steps N] [--cfg-options ...] [--dry-run]:
training steps of the recipe's twin (random weights at the recipe's shapes, synthetic
batches) through the real Runner / DeepSpeed path; img/s with the raw stack of the same
networks measured in the same process (tokenizer stages), tokens/s and MFU (LLM stages);
global figures under torchrun. --dry-run: 2 steps of the tiny twin, CPU too.

loader --config RECIPE: samples/s through the recipe's train_dataloader on synthetic
webdataset shards (CPU).

twin --config RECIPE --scale small|tiny --out DIR: write the recipe's twin (config.py and
the random assets it names) for tools/train.py (multi-GPU trace checks; docs/distributed.md).

tokenizer: SemHiTok encode / decode images/s at the paper's shapes (SigLIP-L/16 semantic
encoder, ViT-B pixel encoder, K = 16384, m = 12, ViT-L enhance decoder; random weights,
bf16) next to the raw ViT stack of the same shapes (no quantization, no fusion) measured
in the same process, plus the SGHC lookup against a flat K*m search.

generate: text-to-image decoding with the fast CFG sampler (unimm.inference.CFGSampler) on
a Qwen2.5-3B-shaped GenerationMLLM with the K*m = 196,608 visual vocabulary (random
weights, bf16): seconds per 256-token image batch at batch 1 / 8 / 32 (cond + uncond
rows), against the weight-read floor measured on the same GPU; time the anchors (HF's
dynamic-cache loop, HF StaticCache + torch.compile; docs/performance.md) in the same device
call. --no-gemv:
the weight products through cuBLAS instead of unimm's Triton kernel. --jacobi-window W
[W ...]: also speculative Jacobi decoding at batch 1 (passes per image, time per pass and
per image beside the plain sampler; on random weights only the time per pass means
anything). --profile N: also one profiled call per batch, its N longest kernels per decode
step (where the time goes).

gemv [--batch ROWS]: the decode step's weight products at the Qwen2.5-3B shapes (q/k/v, o,
gate/up with SiLU * up, down) for 1, 2 and 4 rows: unimm.inference.gemv.gemv_rows against
cuBLAS, microseconds per product and TB/s.

llava_step [--zero 3] [--offload none|cpu_adam|cpu_torch] [--batch 8] [--seq 2048]: phase-2
LLaVA steps (projector + Vicuna-7B-shaped LLaMA, random weights) through UnderstandingMLLM
and the real Runner: DeepSpeed ZeRO, bf16, gradient checkpointing; tokens/s and MFU
(model FLOPs of the LLM against 795 TFLOP/s, as the plain-PyTorch MFU anchor counts them)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.benchmark import BENCHMARKS, OFFLOAD, run_benchmark  # noqa: E402


def parse_args(argv=None):
    from unimm.engine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('what', choices=sorted(BENCHMARKS))
    p.add_argument('--config', help='train / loader / twin: the recipe')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='train / loader / twin: override recipe keys first')
    p.add_argument('--batch', type=int, help='default: 64 (tokenizer), 1, 8 and 32 (generate), '
                   '1, 2 and 4 rows (gemv), '
                   "the recipe's per-GPU batch (train, loader)")
    p.add_argument('--steps', type=int, default=10, help='train: timed optimizer steps (median)')
    p.add_argument('--accum', type=int, help="train: micro-steps per optimizer step (default: "
                   "the recipe's optim_wrapper.accumulative_counts)")
    p.add_argument('--warmup', type=int, default=3, help='train: untimed first steps')
    p.add_argument('--scale', default='paper', choices=['paper', 'small', 'tiny'],
                   help="train / twin: the twin's network sizes (paper: the recipe's own)")
    p.add_argument('--no-raw', action='store_true',
                   help='train: skip the raw-stack reference of tokenizer stages')
    p.add_argument('--build-on', default='device', choices=['device', 'cpu'],
                   help='train: build the networks on the GPU (fast init) or the CPU')
    p.add_argument('--dry-run', action='store_true',
                   help='train: 2 steps of the tiny twin in fp32, on the CPU too (tests)')
    p.add_argument('--out', help='twin: output folder (config.py and its assets)')
    p.add_argument('--batches', type=int, default=50, help='loader: timed batches')
    p.add_argument('--samples', type=int, help='loader: samples written (default: enough)')
    p.add_argument('--num-workers', type=int, help="loader: default: the recipe's")
    p.add_argument('--shard-size', type=int, help='loader: samples a shard (default: two '
                   'shards a reader, at most 1000)')
    p.add_argument('--source-size', type=int, default=512, help='loader: JPEG side, px')
    p.add_argument('--head', default='FlatVisualHead',
                   help='generate: FlatVisualHead or FactorizedVisualHead')
    p.add_argument('--tuning', default='coordinate_descent',
                   help='generate: the decode step\'s compile options (CFGSampler.COMPILE_TUNING)')
    p.add_argument('--no-fuse', action='store_true',
                   help='generate: q/k/v and gate/up as separate GEMMs (no FusedProjections)')
    p.add_argument('--no-gemv', action='store_true',
                   help="generate: the weight products through cuBLAS, not unimm's Triton GEMV")
    p.add_argument('--jacobi-window', type=int, nargs='+',
                   help='generate: also speculative Jacobi decoding with these windows at '
                        'batch 1 (passes per image, s per pass; random weights: only the time '
                        'per pass is meaningful)')
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='generate: also profile one call per batch (torch profiler) and keep '
                        'its N longest kernels, in microseconds and calls per decode step')
    p.add_argument('--attention', default='gqa_decode', choices=['gqa_decode', 'sdpa'],
                   help='generate: grouped decode attention, or HF SDPA (repeat_kv)')
    p.add_argument('--seq', type=int, help='llava_step (default 2048) / train (default: 2048 '
                   'understanding, 512 generation): tokens per sample')
    p.add_argument('--zero', type=int, default=3, help='llava_step: ZeRO stage')
    p.add_argument('--offload', default='none', choices=sorted(OFFLOAD),
                   help='llava_step: optimizer offload (7B + fp32 Adam ~ 110 GB: on an 80 GB '
                   'H100 use cpu_adam; an H200 fits none)')
    p.add_argument('--json', help='also write the results here')
    p.add_argument('--local_rank', '--local-rank', type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.what in ('train', 'loader', 'twin') and not args.config:
        p.error(f'{args.what} needs --config')
    if args.what == 'twin' and not args.out:
        p.error('twin needs --out')
    return args


def main(argv=None):
    return run_benchmark(parse_args(argv))


if __name__ == '__main__':
    main()
