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
``--from-json`` rewrites the section from the results JSON of an earlier run."""
import argparse
import datetime
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

START, END = '<!-- sjd-table:start -->', '<!-- sjd-table:end -->'


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
    p.add_argument('--cfg-scale', type=float, default=4.0)
    p.add_argument('--temperature', type=float, default=1.0)
    p.add_argument('--top-k', type=int, default=0)
    p.add_argument('--top-p', type=float, default=1.0)
    p.add_argument('--tuning', default='default',
                   help="the compiled step's options (CFGSampler's COMPILE_TUNING)")
    p.add_argument('--no-fid', action='store_true', help='skip FID (needs the Inception weights)')
    p.add_argument('--fid-weights', help='FID Inception weights (default: $UNIMM_FID_WEIGHTS '
                   'or ~/.cache/unimm/fid_inception_v3.pth)')
    p.add_argument('--benchmark', help="tools/benchmark.py generate --jacobi-window's JSON")
    p.add_argument('--json', default=os.path.join('work_dirs', 'sjd_table', 'results.json'))
    p.add_argument('--docs', default=os.path.join('docs', 'generation.md'),
                   help='the markdown file whose SJD section is rewritten ("" : none)')
    args = p.parse_args(argv)
    if not args.export and not args.from_json:
        p.error('give an export to measure, or --from-json')
    return args


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'


def reference_images(specs, n_samples, resolution):
    """Correct scenes for each prompt, rendered (the FID reference)."""
    from unimm.datasets.shapes import render, scene_from_prompt
    from unimm.datasets.transforms import pil_to_tensor
    rng = np.random.default_rng(0)
    return torch.stack([pil_to_tensor(render(scene_from_prompt(spec, rng), resolution))
                        for spec in specs for _ in range(n_samples)])


def run(model, sampler, specs, args, seed, window, uncond):
    """One run: the run's ids, passes and seconds per image."""
    ids, passes, seconds = [], [], []
    sync = torch.cuda.synchronize if sampler.device.type == 'cuda' else (lambda: None)
    k = 0
    for spec in specs:
        prompt = model.caption_prompt_ids([spec['prompt']])
        for _ in range(args.n_samples):
            sync()
            start = time.perf_counter()
            ids.append(sampler.generate(
                prompt, uncond, jacobi_window=window, cfg_scale=args.cfg_scale,
                temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                seed=100000 * seed + k))
            sync()
            seconds.append(time.perf_counter() - start)
            passes.append(sampler.last_passes)
            k += 1
    return torch.cat(ids), passes, seconds


def decoded(model, ids, batch=64):
    return torch.cat([model.decode_images(ids[i:i + batch]).float().cpu()
                      for i in range(0, len(ids), batch)])


def measure(args):
    from unimm.datasets.shapes import sample_geneval_prompts
    from unimm.evaluation.geneval import summarize
    from unimm.evaluation.shapes_geneval import score_images
    from unimm.inference.sampler import CFGSampler
    from unimm.models.mllm.llm import load_exported
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = load_exported(None, args.export).to(device).eval()
    if device.type == 'cuda':
        model.to(torch.bfloat16)
    specs = sample_geneval_prompts(0, args.n_per_tag)
    prompts = model.caption_prompt_ids([s['prompt'] for s in specs])
    sampler = CFGSampler(model, max_batch=1, max_prompt_len=max(map(len, prompts)),
                         tuning=args.tuning)
    guided = args.cfg_scale != 1
    uncond = model.caption_prompt_ids([None]) if guided else None
    fid_extractor = None
    if not args.no_fid:
        from unimm.evaluation.recon_metrics import InceptionFeatures
        fid_extractor = InceptionFeatures(args.fid_weights).to(device).eval()
    reference = None
    runs, started = [], time.time()
    for window in [None] + list(args.windows):
        name = 'plain' if window is None else f'SJD W={window}'
        # untimed: builds (compiles) this sampler's graphs
        sampler.generate(prompts[:1], uncond, jacobi_window=window, cfg_scale=args.cfg_scale,
                         temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
        for seed in range(args.seeds):
            ids, passes, seconds = run(model, sampler, specs, args, seed, window, uncond)
            images = decoded(model, ids)
            result = summarize(score_images([s for s in specs for _ in range(args.n_samples)],
                                            images))
            row = dict(sampler=name, window=window, seed=seed, images=len(ids),
                       passes_per_image=sum(passes) / len(passes),
                       seconds_per_image=sum(seconds) / len(seconds),
                       seconds_per_pass=sum(seconds) / sum(passes),
                       geneval_overall=result['overall'], geneval_tasks=result['tasks'])
            if fid_extractor is not None:
                from unimm.evaluation.recon_metrics import FIDAccumulator
                if reference is None:
                    reference = reference_images(specs, args.n_samples, images.shape[-1])
                fid = FIDAccumulator(extractor=fid_extractor)
                for i in range(0, len(images), 64):
                    fid.update(real=reference[i:i + 64], fake=images[i:i + 64])
                row['fid'] = float(fid.compute(sync=False))
            runs.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != 'geneval_tasks'}), flush=True)
    return dict(export=args.export, device=device_name(device),
                date=datetime.date.today().isoformat(),
                wall_s=round(time.time() - started, 1), tokens=model.num_image_tokens,
                head=type(model.visual_head).__name__, prompts=len(specs),
                n_samples=args.n_samples, seeds=args.seeds, tuning=args.tuning,
                sampling=dict(cfg_scale=args.cfg_scale, temperature=args.temperature,
                              top_k=args.top_k, top_p=args.top_p),
                fid=not args.no_fid, runs=runs)


def _stats(values):
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary(results):
    """One row per sampler: means (and standard deviations over seeds) and the ratios to
    the plain sampler; whether GenEval and FID lie within the plain sampler's noise band
    (its mean +- 2 standard deviations over its seeds)."""
    by = {}
    for r in results['runs']:
        by.setdefault(r['sampler'], []).append(r)
    rows, plain = [], None
    for name, runs in by.items():
        row = dict(sampler=name, window=runs[0]['window'], seeds=len(runs))
        for key in ('passes_per_image', 'seconds_per_image', 'seconds_per_pass',
                    'geneval_overall', 'fid'):
            if key in runs[0]:
                row[key], row[key + '_std'] = _stats([r[key] for r in runs])
        if plain is None:
            plain = row
        row['fewer_passes'] = plain['passes_per_image'] / row['passes_per_image']
        row['lower_latency'] = plain['seconds_per_image'] / row['seconds_per_image']
        for key in ('geneval_overall', 'fid'):
            if key in row:
                row[key + '_in_band'] = abs(row[key] - plain[key]) <= \
                    2 * plain[key + '_std'] + 1e-12
        rows.append(row)
    return rows


def section(results, rows, benchmark=None):
    """The generated markdown section (between the markers)."""
    s = results['sampling']
    lines = [START, '',
             f"Generated by `python tools/sjd_table.py {results['export']}` on "
             f"{results['device']}, {results['date']} (wall time {results['wall_s'] / 60:.1f} "
             'min); do not edit by hand. '
             f"{results['prompts']} shapes-GenEval prompts x {results['n_samples']} images per "
             f"run, {results['seeds']} seeds per sampler, batch 1, {results['head']}, "
             f"{results['tokens']} tokens per image, CFG {s['cfg_scale']}, temperature "
             f"{s['temperature']}, top-k {s['top_k']}, top-p {s['top_p']}, compile tuning "
             f"`{results['tuning']}`. Mean ± standard deviation over seeds; the noise band is "
             "the plain sampler's mean ± 2 standard deviations.", '',
             '| sampler | passes / image | fewer passes | ms / image | lower latency | '
             'ms / pass | shapes-GenEval | FID |', '| --- |' + ' --- |' * 7]

    def band(row, key, fmt):
        if key not in row:
            return '–'
        mark = '' if row['window'] is None else (' (in band)' if row[key + '_in_band']
                                                 else ' (**outside band**)')
        return f"{row[key]:{fmt}} ± {row[key + '_std']:{fmt}}{mark}"
    for row in rows:
        lines.append(
            f"| {row['sampler']} | {row['passes_per_image']:.1f} | {row['fewer_passes']:.2f}× | "
            f"{1000 * row['seconds_per_image']:.1f} | {row['lower_latency']:.2f}× | "
            f"{1000 * row['seconds_per_pass']:.2f} | {band(row, 'geneval_overall', '.3f')} | "
            f"{band(row, 'fid', '.1f')} |")
    if benchmark:
        lines += ['', f"At the Qwen2.5-3B shape (`tools/benchmark.py generate --batch 1 "
                  f"--jacobi-window ...`, random weights, {benchmark['device']}, "
                  f"{benchmark.get('date', '')}): random weights give near-uniform "
                  'distributions, so drafts are almost never kept there and the passes per '
                  'image say nothing; the time per pass is what carries over, the passes per '
                  'image come from the trained generator above.', '',
                  '| sampler | passes / image | ms / pass | s / image |',
                  '| --- | --- | --- | --- |']
        for r in benchmark.get('jacobi', []):
            lines.append(f"| {r['sampler']} | {r['passes_per_image']:.1f} | "
                         f"{1000 * r['seconds_per_pass']:.2f} | {r['seconds_per_image']:.3f} |")
    return lines + ['', END]


def write_docs(path, lines):
    """Replace the section between the markers in ``path`` (appended if it has none)."""
    text = open(path).read() if os.path.exists(path) else ''
    block = '\n'.join(lines)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip('\n') + '\n\n' + block + '\n'
    with open(path, 'w') as f:
        f.write(text)


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
    else:
        results = measure(args)
    rows = summary(results)
    results['summary'] = rows
    benchmark = None
    if args.benchmark:
        with open(args.benchmark) as f:
            benchmark = json.load(f)
    if not args.from_json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    lines = section(results, rows, benchmark)
    if args.docs:
        write_docs(args.docs, lines)
    print('\n'.join(lines))
    return results


if __name__ == '__main__':
    main()
