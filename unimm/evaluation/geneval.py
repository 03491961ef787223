"""GenEval (Ghosh et al. 2023): generate images for its prompts in the exact folder layout
its scorer reads, and run that scorer when it is installed.

Layout: ``<outdir>/<5-digit prompt index>/metadata.jsonl`` (the prompt's metadata line)
and ``<outdir>/<index>/samples/<4-digit sample>.png``. Scores follow GenEval's
``summary_scores.py``: accuracy per task (tag) over images, overall = mean over tasks.
"""
import importlib.util
import json
import os
import subprocess
import sys
import time

from PIL import Image

from unimm.evaluation.recon import to_uint8
from unimm.registry import METRICS

SCORER = os.path.join('evaluation', 'evaluate_images.py')
DETECTOR = 'mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco.pth'
INSTALL_HINT = (
    "GenEval's scorer is not set up: git clone https://github.com/djghosh13/geneval, install "
    'its requirements (mmdet 2.x, mmcv-full, open_clip, clip_benchmark; a CUDA GPU), download '
    f'the detector with its evaluation/download_models.sh (gives {DETECTOR}), then set '
    'test_cfg.geneval.geneval_root and .detector_path (--cfg-options), or run: python '
    '<geneval>/evaluation/evaluate_images.py {outdir} --outfile results.jsonl --model-path '
    '<detector folder>; python <geneval>/evaluation/summary_scores.py results.jsonl')


def read_metadata(path):
    """GenEval prompt metadata: (raw line, parsed dict) per non-blank line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'GenEval metadata {path!r} not found: it is evaluation_metadata.jsonl from '
            'https://github.com/djghosh13/geneval (prompts/evaluation_metadata.jsonl); point '
            'test_cfg.geneval.metadata_file at a local copy')
    with open(path, encoding='utf-8') as f:
        return [(line.strip(), json.loads(line)) for line in f if line.strip()]


def summarize(records):
    """GenEval's summary of per-image results (dicts with 'tag', 'correct' and 'prompt'):
    per-task accuracy, overall = mean over tasks, and the image / prompt accuracies."""
    by_tag, by_prompt = {}, {}
    for r in records:
        by_tag.setdefault(r['tag'], []).append(bool(r['correct']))
        by_prompt.setdefault(r['prompt'], []).append(bool(r['correct']))
    tasks = {tag: sum(v) / len(v) for tag, v in by_tag.items()}
    return {'overall': sum(tasks.values()) / len(tasks) if tasks else 0.0, 'tasks': tasks,
            'correct_images': sum(sum(v) for v in by_tag.values()) / max(len(records), 1),
            'correct_prompts': sum(any(v) for v in by_prompt.values()) / max(len(by_prompt), 1),
            'num_images': len(records)}


def prompt_folder(outdir, index):
    return os.path.join(outdir, f'{index:05d}')


def save_prompt_samples(outdir, index, metadata_line, images, first_sample=0):
    """Write one prompt's metadata.jsonl and its samples (images [n,3,H,W] in [-1,1])
    as samples/<first_sample + k:04d>.png; returns the PNG paths."""
    folder = prompt_folder(outdir, index)
    os.makedirs(os.path.join(folder, 'samples'), exist_ok=True)
    with open(os.path.join(folder, 'metadata.jsonl'), 'w', encoding='utf-8') as f:
        f.write(metadata_line + '\n')
    paths = []
    for k, array in enumerate(to_uint8(images).numpy()):
        paths.append(os.path.join(folder, 'samples', f'{first_sample + k:04d}.png'))
        Image.fromarray(array).save(paths[-1])
    return paths


def generate_for_prompts(model, prompts, n_samples, batch_size, sampling, seed):
    """Yield (prompt index, first sample index, images) in batches over the flattened
    (prompt, sample) list; the batch starting at flat position k uses seed ``seed + k``."""
    flat = [(p, s) for p in range(len(prompts)) for s in range(n_samples)]
    for start in range(0, len(flat), batch_size):
        chunk = flat[start:start + batch_size]
        images = model.generate_images([prompts[p] for p, _ in chunk], seed=seed + start,
                                       batch_size=len(chunk), **sampling)
        k = 0
        while k < len(chunk):  # split the batch back into runs of one prompt
            p, s = chunk[k]
            n = sum(1 for q, _ in chunk[k:] if q == p)
            yield p, s, images[k:k + n]
            k += n


@METRICS.register_module()
class GenEvalEvaluator:
    """Writes GenEval's layout under ``<work_dir>/<outdir>`` for ``metadata_file``
    (``n_samples`` images per prompt, 4 in GenEval), then scores it with GenEval's own
    ``evaluate_images.py`` when ``geneval_root`` and ``detector_path`` are set and
    mmdet is importable; otherwise the result says how to score it."""

    def __init__(self, metadata_file, n_samples=4, batch_size=16, sampling=dict(cfg_scale=4.0),
                 seed=0, outdir='geneval', geneval_root=None, detector_path=None, limit=None):
        self.metadata_file, self.n_samples, self.batch_size = metadata_file, n_samples, batch_size
        self.sampling, self.seed, self.outdir = dict(sampling), seed, outdir
        self.geneval_root, self.detector_path, self.limit = geneval_root, detector_path, limit

    def scorer_problem(self):
        """Why GenEval's scorer cannot run here, or None."""
        if not self.geneval_root or not os.path.isfile(os.path.join(self.geneval_root, SCORER)):
            return f'geneval_root={self.geneval_root!r} has no {SCORER}'
        if not self.detector_path or not os.path.isfile(os.path.join(self.detector_path,
                                                                     DETECTOR)):
            return f'detector_path={self.detector_path!r} has no {DETECTOR}'
        if importlib.util.find_spec('mmdet') is None:
            return 'mmdet is not installed'
        return None

    def __call__(self, model, work_dir):
        entries = read_metadata(self.metadata_file)[:self.limit]
        outdir = os.path.join(work_dir, self.outdir)
        start = time.time()
        for p, s, images in generate_for_prompts(model, [m['prompt'] for _, m in entries],
                                                 self.n_samples, self.batch_size,
                                                 self.sampling, self.seed):
            save_prompt_samples(outdir, p, entries[p][0], images, first_sample=s)
        result = {'outdir': outdir, 'num_prompts': len(entries),
                  'num_images': len(entries) * self.n_samples,
                  'generation_s': round(time.time() - start, 1)}
        problem = self.scorer_problem()
        if problem is not None:
            message = f'{problem}. ' + INSTALL_HINT.format(outdir=outdir)
            print(message, file=sys.stderr)
            result['scorer'] = message
            return result
        outfile = os.path.join(work_dir, 'geneval_results.jsonl')
        proc = subprocess.run([sys.executable, SCORER, outdir, '--outfile', outfile,
                               '--model-path', self.detector_path],
                              cwd=self.geneval_root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"GenEval's scorer failed (exit {proc.returncode}):\n"
                               f'{(proc.stdout + proc.stderr)[-3000:]}')
        with open(outfile) as f:
            result.update(summarize([json.loads(line) for line in f if line.strip()]))
        result['scorer'] = 'geneval'
        return result
