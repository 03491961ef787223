"""Every recipe in registry_configs/ (all but _base_/) builds through the real Runner and
trains one step at a tiny size, and its export round-trips: no recipe silently rots.

How a recipe is made tiny (in-process, one shared tiny SigLIP and one tiny LM):

* every component dict is rewritten by its ``type`` through the package's shrinker
  (unimm.apis.shrink: widths, depths, codebook sizes, 32 px images with 8 px patches,
  i.e. 16 tokens) and the test's stand-ins (tests/recipes.py: SigLIP and LLM folders
  replaced by the session's tiny ones; LPIPS off; the discriminator starts at step 0 so
  the GAN step runs). A type with nothing to size is listed in ``SIZE_FREE``; a type
  with neither a size rule nor that listing fails the test naming the recipe and the
  type: add its rule to ``SIZE_RULES``.
* the training dataset is replaced through ``TINY_DATASETS`` by a shapes-world dataset of
  the same kind (images + captions, or LLaVA conversations), 4 items, 32 px.
* a path ``work_dirs/NAME/export`` (``init_from``, ``image_tokenizer``, a tokenizer or
  projector export) is the export of recipe NAME's tiny run, trained first: recipes
  form a chain (spc -> sghc -> enhance -> llava / t2i), tested as such.
* run settings: batch 2, 1 step, fp32, no workers, no TensorBoard, no test_cfg; the
  ZeRO stage stays the recipe's; a recipe's ``compile`` runs with the ``eager`` backend
  (dynamo captures every network; inductor's kernels are left to the GPU).

Then: the step ran with finite losses; the model reloaded from the export folder gives
the same encode ids (tokenizers) and the same eval-mode loss on a fixed batch (all)."""
import functools
import json
import math
import os

import pytest
import torch

from tests.conftest import release_process_group
from tests.recipes import (CONFIGS, SIGLIP, TINY, TOKENS, eval_loss, fixed_batch, name_of,
                           tiny_config)
from unimm.models.encoders.semantic import SemanticTeacher


def test_recipe_names_are_unique():
    names = [name_of(c) for c in CONFIGS]
    assert len(names) == len(set(names)), 'two recipes would share work_dirs/NAME'


# ------------------------------------------------------------------ session fixtures
@pytest.fixture(scope='module')
def tiny_runs(tmp_path_factory):
    """``run(config) -> (model, dataset, work_dir)``: trains a recipe's tiny twin once
    (its exported dependencies first) and keeps the result for this module. The runners
    join a process group in this process and set RANK / MASTER_PORT ...: both are undone
    at the end, or later tests would see a rank and subprocesses a taken port."""
    env = dict(os.environ)
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from unimm.apis.tiny_lm import make_tiny_lm, shapes_corpus
    root = tmp_path_factory.mktemp('all_configs')
    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig(**SIGLIP)).save_pretrained(root / 'siglip')
    make_tiny_lm(str(root / 'llm'), texts=list(shapes_corpus(num_scenes=100)), **TINY['llm'])
    by_name = {name_of(c): c for c in CONFIGS}

    def export(name):
        if name not in by_name:
            raise AssertionError(f'work_dirs/{name}/export is named by a recipe but no '
                                 f'registry_configs/**/{name}.py trains it')
        return os.path.join(run(by_name[name])[2], 'export')

    @functools.lru_cache(maxsize=None)
    def run(config):
        from unimm.engine.runner import Runner
        ctx = dict(config=config, siglip=str(root / 'siglip'), llm=str(root / 'llm'),
                   export=export)
        cfg = tiny_config(config, ctx)
        work_dir = str(root / name_of(config))
        runner = Runner(cfg, work_dir)
        state = runner.train()
        assert state['global_step'] == 1 and state['nonfinite_total'] == 0, (config, state)
        return runner.engine.module.eval(), runner.dataset, work_dir

    yield run
    release_process_group(env)


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS)
def test_recipe_trains_one_tiny_step_and_round_trips(config, tiny_runs):
    model, dataset, work_dir = tiny_runs(config)
    logs = [json.loads(line) for line in open(os.path.join(work_dir, 'log.jsonl'))
            if '"loss"' in line]
    assert logs and all(math.isfinite(v) for k, v in logs[-1].items()
                        if k.startswith(('loss', 'disc/loss'))), logs

    loaded = type(model).from_pretrained(os.path.join(work_dir, 'export')).eval()
    batch = fixed_batch(dataset)
    if hasattr(model, 'encode'):
        images = batch['image']
        ids = model.encode(images)
        assert ids.shape == (2, TOKENS) and torch.equal(loaded.encode(images), ids)
    teacher = getattr(model, 'teacher', None)
    if isinstance(teacher, SemanticTeacher) and not teacher.is_encoder:
        # stage 1 with a trained encoder: its cosine target is a frozen teacher, which an
        # export never carries (docs/tokenizer.md); score the reloaded model against it
        assert loaded.teacher.net is None
        loaded.teacher = teacher
    assert torch.allclose(eval_loss(loaded, batch), eval_loss(model, batch), rtol=1e-5,
                          atol=1e-6)

