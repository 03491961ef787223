"""The lmms-eval model ``unimm``: any exported unimm understanding or unified model behind
lmms-eval's ``lmms`` interface, so that

    python -m lmms_eval --model unimm --model_args config=CFG,checkpoint=EXPORT --tasks mme,pope

runs the standard benchmarks. Registered through the ``lmms_eval.models`` entry point
(setup.py), which lmms-eval 0.7 reads into MODEL_REGISTRY_V2. Needs the ``lmms`` extra."""
import torch
from lmms_eval.api.instance import GenerationResult
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest
from tqdm import tqdm

from unimm.datasets.llava import image_input
from unimm.models.mllm.conversation import IMAGE_TOKEN
from unimm.models.mllm.llm import load_exported  # noqa: F401  (this module's public name)


def manifest():
    """The entry-point payload: lmms-eval resolves ``--model unimm`` through it."""
    return ModelManifest(model_id='unimm', simple_class_path='unimm.evaluation.lmms_model.Unimm')


class Unimm(lmms):
    """Args (``--model_args``): ``checkpoint`` (an export folder; its config.json names
    the model class), ``config`` (the training config: the class if the export does
    not), ``batch_size``, ``device``; or ``model``: an already loaded model (used by
    ``tools/test.py --task lmms``)."""

    def __init__(self, checkpoint=None, config=None, model=None, batch_size=1, device=None,
                 max_new_tokens=32, **unused):
        super().__init__()
        if model is None:
            if not checkpoint:
                raise ValueError('unimm lmms-eval model: pass --model_args '
                                 'config=CONFIG,checkpoint=EXPORT_FOLDER')
            model = load_exported(config, checkpoint)
        device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        self.model = model.to(device).eval()
        self.batch_size_per_gpu = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)

    def _images(self, visuals):
        """PIL images -> the model's [-1, 1] squares (LLaVA-1.5's pad-to-square)."""
        return torch.stack([image_input(v, self.model.image_size) for v in visuals])

    def _inputs(self, context, doc_to_visual, doc_id, task, split):
        visuals = [v for v in doc_to_visual(self.task_dict[task][split][doc_id]) if v is not None]
        prefix = ''.join(f'{IMAGE_TOKEN}\n' for _ in visuals)
        return [{'from': 'human', 'value': prefix + context}], visuals

    def generate_until(self, requests):
        out = []
        for start in tqdm(range(0, len(requests), self.batch_size_per_gpu), disable=self.rank,
                          desc='unimm generate'):
            chunk = [r.args for r in requests[start:start + self.batch_size_per_gpu]]
            convs, visuals = zip(*[self._inputs(c, v, d, t, s) for c, _, v, d, t, s in chunk])
            gen = dict(chunk[0][1])
            until = gen.pop('until', None) or []
            until = [until] if isinstance(until, str) else until
            kwargs = {'max_new_tokens': int(gen.get('max_new_tokens', self.max_new_tokens))}
            if float(gen.get('temperature', 0) or 0) > 0:
                kwargs.update(do_sample=True, temperature=float(gen['temperature']),
                              top_p=float(gen.get('top_p') or 1.0))
            flat = [v for vs in visuals for v in vs]
            texts = self.model.generate(list(convs), self._images(flat) if flat else None,
                                        **kwargs)
            for text in texts:
                for stop in until:
                    text = text.split(stop)[0] if stop else text
                out.append(text)
        return out

    def loglikelihood(self, requests):
        out = []
        for start in range(0, len(requests), self.batch_size_per_gpu):
            chunk = [r.args for r in requests[start:start + self.batch_size_per_gpu]]
            convs, visuals, answers = [], [], []
            for context, target, doc_to_visual, doc_id, task, split in chunk:
                doc = self.task_dict[task][split][doc_id]
                conv, vis = self._inputs(context, doc_to_visual, doc_id, task, split)
                convs.append(conv)
                visuals += vis
                answers.append((target if isinstance(target, str) else target(doc)).strip())
            out += self.model.loglikelihood(convs, answers,
                                            self._images(visuals) if visuals else None)
        # lmms-eval 0.7.3 scores multiple choice by argmin, as its own models return a loss:
        # hand it -log p. Its evaluator also turns any non-string response into
        # str(response); GenerationResult passes the (score, is_greedy) pairs through.
        return [GenerationResult(text=(-logp, greedy)) for logp, greedy in out]

    def generate_until_multi_round(self, requests):
        raise NotImplementedError('unimm: multi-round generation is not supported; use '
                                  'single-round tasks')
