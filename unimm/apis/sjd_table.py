"""Speculative Jacobi decoding against the plain sampler on a trained shapes-world generator,
behind tools/sjd_table.py (the method: the tool's help): ``measure`` runs each sampler over
seeds (passes per image, wall time per image at batch 1, shapes-GenEval, FID),
``summary`` and ``section`` make the table of docs/generation.md, ``sjd_table`` does it
all (or rewrites the section from saved results)."""
import datetime
import json
import os
import statistics
import time

import numpy as np
import torch

START, END = '<!-- sjd-table:start -->', '<!-- sjd-table:end -->'
# CFGSampler.generate's settings of every run, unless given
SAMPLING = dict(cfg_scale=4.0, temperature=1.0, top_k=0, top_p=1.0)


def device_name(device):
    return torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'


def reference_images(specs, n_samples, resolution):
    """Correct scenes for each prompt, rendered (the FID reference)."""
    from unimm.datasets.shapes import render, scene_from_prompt
    from unimm.datasets.transforms import pil_to_tensor
    rng = np.random.default_rng(0)
    return torch.stack([pil_to_tensor(render(scene_from_prompt(spec, rng), resolution))
                        for spec in specs for _ in range(n_samples)])


def run(model, sampler, specs, n_samples, sampling, seed, window, uncond):
    """One run (``n_samples`` images per prompt, ``sampling``: CFGSampler.generate's
    settings): the run's ids, passes and seconds per image."""
    ids, passes, seconds = [], [], []
    sync = torch.cuda.synchronize if sampler.device.type == 'cuda' else (lambda: None)
    k = 0
    for spec in specs:
        prompt = model.caption_prompt_ids([spec['prompt']])
        for _ in range(n_samples):
            sync()
            start = time.perf_counter()
            ids.append(sampler.generate(prompt, uncond, jacobi_window=window,
                                        seed=100000 * seed + k, **sampling))
            sync()
            seconds.append(time.perf_counter() - start)
            passes.append(sampler.last_passes)
            k += 1
    return torch.cat(ids), passes, seconds


def decoded(decode, ids, batch=64):
    """Images of ``ids`` through ``decode`` (global ids -> images in [-1, 1]), on the CPU."""
    return torch.cat([decode(ids[i:i + batch]).float().clamp(-1, 1).cpu()
                      for i in range(0, len(ids), batch)])


def reference_features(specs, n_samples, resolution, extractor, batch=64):
    """The Inception features of the FID reference (``reference_images``), extracted once
    for every run of a table."""
    images = reference_images(specs, n_samples, resolution)
    with torch.no_grad():
        return torch.cat([extractor(images[i:i + batch]) for i in range(0, len(images), batch)])


def fid_score(images, reference, extractor, batch=64):
    """FID of ``images`` (features from ``extractor``) against the ``reference`` features."""
    from unimm.evaluation.recon_metrics import FIDAccumulator
    scores = FIDAccumulator(extractor=extractor)
    scores.update_features(real=reference)
    with torch.no_grad():
        for i in range(0, len(images), batch):
            scores.update(fake=images[i:i + batch])
    return float(scores.compute(sync=False))


def inception(fid_weights, device):
    from unimm.evaluation.recon_metrics import InceptionFeatures
    return InceptionFeatures(fid_weights).to(device).eval()


def measure(export, windows, seeds, n_per_tag, n_samples, sampling, tuning, fid=True,
            fid_weights=None):
    """Each run of the table on ``export`` (the plain sampler, then SJD at each of
    ``windows``; ``seeds`` runs each; FID with the Inception weights ``fid_weights`` unless
    not ``fid``): the results, with the settings."""
    from unimm.datasets.shapes import sample_geneval_prompts
    from unimm.evaluation.geneval import summarize
    from unimm.evaluation.shapes_geneval import score_images
    from unimm.inference.sampler import CFGSampler
    from unimm.models.mllm.llm import load_exported
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = load_exported(None, export).to(device).eval()
    if device.type == 'cuda':
        model.to(torch.bfloat16)
    specs = sample_geneval_prompts(0, n_per_tag)
    prompts = model.caption_prompt_ids([s['prompt'] for s in specs])
    sampler = CFGSampler(model, max_batch=1, max_prompt_len=max(map(len, prompts)),
                         tuning=tuning)
    guided = sampling['cfg_scale'] != 1
    uncond = model.caption_prompt_ids([None]) if guided else None
    fid_extractor = inception(fid_weights, device) if fid else None
    reference = None
    runs, started = [], time.time()
    for window in [None] + list(windows):
        name = 'plain' if window is None else f'SJD W={window}'
        # untimed: builds (compiles) this sampler's graphs
        sampler.generate(prompts[:1], uncond, jacobi_window=window, **sampling)
        for seed in range(seeds):
            ids, passes, seconds = run(model, sampler, specs, n_samples, sampling, seed,
                                       window, uncond)
            images = decoded(model.decode_images, ids)
            result = summarize(score_images([s for s in specs for _ in range(n_samples)],
                                            images))
            row = dict(sampler=name, window=window, seed=seed, images=len(ids),
                       passes_per_image=sum(passes) / len(passes),
                       seconds_per_image=sum(seconds) / len(seconds),
                       seconds_per_pass=sum(seconds) / sum(passes),
                       geneval_overall=result['overall'], geneval_tasks=result['tasks'],
                       ids=ids.tolist())
            if fid_extractor is not None:
                if reference is None:
                    reference = reference_features(specs, n_samples, images.shape[-1],
                                                   fid_extractor)
                row['fid'] = fid_score(images, reference, fid_extractor)
            runs.append(row)
            print(json.dumps(brief(row)), flush=True)
    return dict(export=export, device=device_name(device),
                date=datetime.date.today().isoformat(),
                wall_s=round(time.time() - started, 1), tokens=model.num_image_tokens,
                head=type(model.visual_head).__name__, prompts=len(specs), n_per_tag=n_per_tag,
                n_samples=n_samples, seeds=seeds, tuning=tuning, sampling=dict(sampling),
                fid=fid, runs=runs)


def brief(row):
    """A run without its per-task scores and ids (for printing)."""
    return {k: v for k, v in row.items() if k not in ('geneval_tasks', 'ids')}


def add_fid(results, tokenizer, fid_weights=None):
    """FID of every run of ``results`` that has none, from its kept ids decoded by the
    tokenizer export ``tokenizer`` (the generator export's ``image_tokenizer/``): FID on a
    machine other than the one that sampled (e.g. one that has the Inception weights)."""
    from unimm.datasets.shapes import sample_geneval_prompts
    from unimm.models.mllm.generation import load_image_tokenizer
    missing = [r for r in results['runs'] if 'fid' not in r]
    if missing and 'ids' not in missing[0]:
        raise ValueError('these results keep no ids (measured before ids were kept); '
                         'measure again, with FID or without')
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    decoder = load_image_tokenizer(tokenizer, 'sjd_table --fid-tokenizer').to(device)
    extractor = inception(fid_weights, device)
    specs = sample_geneval_prompts(0, results['n_per_tag'])
    reference = None
    for row in missing:
        with torch.no_grad():
            images = decoded(decoder.decode, torch.tensor(row['ids'], device=device))
        if reference is None:
            reference = reference_features(specs, results['n_samples'], images.shape[-1],
                                           extractor)
        row['fid'] = fid_score(images, reference, extractor)
        print(json.dumps(brief(row)), flush=True)
    results['fid'] = True
    return results


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


def sjd_table(export=None, from_json=None, windows=(8, 16), seeds=3, n_per_tag=10,
              n_samples=4, sampling=None, tuning='default', fid=True, fid_weights=None,
              benchmark=None, json_path=None, docs=None, fid_tokenizer=None):
    """``measure`` on ``export`` (``sampling`` overrides ``SAMPLING``), or the results
    JSON ``from_json`` of an earlier run (with ``fid_tokenizer``, a tokenizer export, the
    FID of its runs that have none added from their ids, and the JSON rewritten); the
    summary rows added to the results, which go to ``json_path`` (if measured here and
    given); the section (with the rows of the ``benchmark`` JSON of tools/benchmark.py
    generate --jacobi-window, if given) printed and written into ``docs`` (if given).
    Returns the results."""
    if from_json:
        with open(from_json) as f:
            results = json.load(f)
        if fid_tokenizer:
            add_fid(results, fid_tokenizer, fid_weights)
        json_path = from_json if fid_tokenizer else None  # rewritten only when changed
    else:
        results = measure(export, windows, seeds, n_per_tag, n_samples,
                          dict(SAMPLING, **(sampling or {})), tuning, fid, fid_weights)
    rows = summary(results)
    results['summary'] = rows
    bench = None
    if benchmark:
        with open(benchmark) as f:
            bench = json.load(f)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, 'w') as f:
            json.dump(results, f, indent=1)
    lines = section(results, rows, bench)
    if docs:
        write_docs(docs, lines)
    print('\n'.join(lines))
    return results
