"""Speculative Jacobi decoding against the plain sampler on a trained shapes-world generator:
forward passes per image, wall time per image at batch 1, shapes-GenEval overall and a
shapes-world FID, each over several seeds; writes JSON and the SJD section of
docs/generation.md.

    python tools/sjd_table.py work_dirs/t2i_flat64/export [--windows 8 16] [--seeds 3]
        [--n-per-tag 10 --n-samples 4] [--benchmark bench_sjd.json] [--no-fid]

Each run (the plain sampler, then SJD at each window) draws ``n_samples`` images for each of
the ``6 * n_per_tag`` prompts of `sample_geneval_prompts(0, n_per_tag)`, one prompt at a
time (batch 1; image k of a run with seed s is drawn with seed 100000 s + k), on one
`CFGSampler` (compiled on a GPU, the same tuning for every run; each run's graphs are built
by an untimed image first). Wall time is the sampler's call (the tokens), synchronised per
image; decoding and scoring are not timed. GenEval: the shapes scorer (strict) on the
decoded images; FID: Inception features of the run's images against one set of correct
scenes rendered for the same prompts (as many as a run's images), so every run is scored
against the same reference. The plain sampler's spread over its seeds is the noise band
the SJD runs are compared with. ``--benchmark`` adds the rows of `tools/benchmark.py
generate --jacobi-window W --json FILE` (the 3B shape, random weights) to the section;
``--from-json`` rewrites the section from the results JSON of an earlier run, and with
``--fid-tokenizer`` first adds the FID of its runs from their kept ids (sample where the GPU
is, score where the Inception weights are)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.sjd_table import SAMPLING, sjd_table  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('export', nargs='?',
                   help='a GenerationMLLM / UnifiedMLLM export on the shapes world')
    p.add_argument('--from-json', help='no measuring: rewrite the docs section from the '
                   'results JSON of an earlier run (e.g. one brought back from a GPU machine)')
    p.add_argument('--windows', type=int, nargs='+', default=[8, 16],
                   help='SJD windows (query positions per pass)')
    p.add_argument('--seeds', type=int, default=3, help='runs per sampler')
    p.add_argument('--n-per-tag', type=int, default=10, help='prompts per GenEval category')
    p.add_argument('--n-samples', type=int, default=4, help='images per prompt')
    p.add_argument('--cfg-scale', type=float, default=SAMPLING['cfg_scale'])
    p.add_argument('--temperature', type=float, default=SAMPLING['temperature'])
    p.add_argument('--top-k', type=int, default=SAMPLING['top_k'])
    p.add_argument('--top-p', type=float, default=SAMPLING['top_p'])
    p.add_argument('--tuning', default='default',
                   help="the compiled step's options (CFGSampler's COMPILE_TUNING)")
    p.add_argument('--no-fid', action='store_true', help='skip FID (needs the Inception weights)')
    p.add_argument('--fid-weights', help='FID Inception weights (default: $UNIMM_FID_WEIGHTS '
                   'or ~/.cache/unimm/fid_inception_v3.pth)')
    p.add_argument('--fid-tokenizer', help='with --from-json: add the FID of runs that have '
                   'none, decoding their kept ids with this tokenizer export (the generator '
                   "export's image_tokenizer/), and rewrite the JSON")
    p.add_argument('--benchmark', help="tools/benchmark.py generate --jacobi-window's JSON")
    p.add_argument('--json', default=os.path.join('work_dirs', 'sjd_table', 'results.json'))
    p.add_argument('--docs', default=os.path.join('docs', 'generation.md'),
                   help='the markdown file whose SJD section is rewritten ("" : none)')
    args = p.parse_args(argv)
    if not args.export and not args.from_json:
        p.error('give an export to measure, or --from-json')
    return args


def main(argv=None):
    args = parse_args(argv)
    return sjd_table(args.export, args.from_json, args.windows, args.seeds, args.n_per_tag,
                     args.n_samples, dict(cfg_scale=args.cfg_scale, temperature=args.temperature,
                                          top_k=args.top_k, top_p=args.top_p),
                     args.tuning, not args.no_fid, args.fid_weights, args.benchmark, args.json,
                     args.docs or None, args.fid_tokenizer)


if __name__ == '__main__':
    main()
