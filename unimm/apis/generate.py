"""Images from captions with an exported text-to-image or unified model (behind
tools/generate.py): each caption drawn ``n`` times by the fast CFG sampler
(``unimm.inference.generate_images``), saved with a grid and one record per image."""
import torch
from tqdm import tqdm

from unimm.inference.generate import generate_images, sample_records, save_samples
from unimm.models.mllm.llm import load_exported


def read_prompts(prompt=None, prompts_file=None, n=None):
    """The captions to draw, each repeated ``n`` times (default: 4 for the one ``prompt``,
    1 for a file of one caption a line, blank lines skipped)."""
    if prompts_file is None:
        captions = [prompt]
    else:
        with open(prompts_file) as f:
            captions = [line.strip() for line in f if line.strip()]
    n = n or (4 if prompts_file is None else 1)
    return [c for c in captions for _ in range(n)]


def generate(config, checkpoint, prompts, out, batch_size=8, seed=0, cfg_scale=4.0,
             cfg_schedule='constant', temperature=1.0, top_k=0, top_p=1.0, jacobi_window=None,
             grid_columns=8, bf16=False):
    """Draw ``prompts`` (one image each) with the export ``checkpoint`` (bfloat16 on CUDA or
    when ``bf16``) and write to ``out`` <prompt slug>_<k>.png per image, grid.png and
    samples.jsonl (file, prompt, the seed of its batch and its row there, the settings);
    returns the image paths. The same prompts, batch size and seed give the same images."""
    model = load_exported(config, checkpoint)
    cuda = torch.cuda.is_available()
    model.to('cuda' if cuda else 'cpu').eval()
    if cuda or bf16:
        model.to(torch.bfloat16)
    sampling = dict(batch_size=batch_size, seed=seed, cfg_scale=cfg_scale,
                    cfg_schedule=cfg_schedule, temperature=temperature, top_k=top_k,
                    top_p=top_p, jacobi_window=jacobi_window)
    records = sample_records(prompts, **sampling)
    with tqdm(total=len(prompts), unit='image', desc='generating') as bar:
        images = generate_images(model, prompts, **sampling,
                                 progress=lambda done, total: bar.update(done - bar.n))
    paths = save_samples(images, records, out, grid_columns=grid_columns)
    print('\n'.join(paths))
    return paths
