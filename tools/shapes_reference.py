"""The shapes-world reference chain: trains the GPU recipes of registry_configs/shapes/ in
dependency order (several side by side: the models are small), then scores every tokenizer
and MLLM on held-out scenes and writes docs/shapes_reference.md.

    python tools/shapes_reference.py train [--only NAME ...] [--parallel 4]   # on a GPU
    python tools/shapes_reference.py evaluate     # the MLLMs' held-out tasks, best on a GPU
    python tools/shapes_reference.py report       # any machine

    python tools/shapes_reference.py train --chain baselines   # the baseline comparison
    python tools/shapes_reference.py pack --out DIR [--exports NAME ...]   # GPU -> here
    python tools/shapes_reference.py unpack DIR/*.tar*
    python tools/shapes_reference.py report --chain baselines  # -> docs/baselines.md

    python tools/shapes_reference.py train --chain ablations --only ROW.sSEED.recon ...
    python tools/shapes_reference.py report --chain ablations  # -> docs/ablations.md

    python tools/shapes_reference.py train --chain scaling     # the t2i scaling study

Run it from the repository root, like tools/train.py. The chain's steps (``STEPS`` of
unimm/apis/shapes_reference.py) are the tokenizer recipes, the preparation of the MLLM
stages (the reference LLM made by tools/make_tiny_lm.py, the caption-image pairs
pre-tokenised by tools/pretokenize.py with sghc_flat64, both written to a temporary folder
renamed when complete), the MLLM recipes and their held-out evaluations (each as soon as
its model is trained, kept like ``evaluate``'s). A recipe trains with ``--resume auto`` into
work_dirs/<recipe>/; a step is skipped once its output exists, so the chain can be spread
over several sessions. ``train`` records each step's wall time and device in
work_dirs/shapes_reference/stages.json (stopped by SIGTERM, e.g. by ``timeout`` at a
machine's time limit, it notes how long the running steps had run, and a step resumed
later records the sum of its runs);
``evaluate`` runs tools/test.py on the MLLM exports and keeps the results in
work_dirs/shapes_reference/<recipe>/ (``report`` runs the missing ones and reuses the rest,
unless the export is newer); ``report`` reads the tokenizer exports (LPIPS and rFID need
their local weights, see docs/getting_started.md) and keeps each tokenizer's scores in
work_dirs/shapes_reference/<recipe>/scores.json (reused unless the export is newer).

The baseline chain (``--chain baselines``, docs/baselines.md) trains the joint (VILA-U),
pixel VQ (LlamaGen) and dual codebook (TokenFlow) tokenizers at sghc_flat64's budget, then
their LLaVA and t2i models exactly as llava_sghc_flat64 / t2i_flat64, and evaluates each
MLLM as a step of the chain (its test JSONs are what the report needs, so the MLLM exports
never have to leave the GPU machine). The Janus-style dual encoder is not trained again:
its understanding path is teacher_flat64's continuous features (llava_teacher_flat64 of
the reference chain) and its generation path a pixel VQ (pixel_vq_flat64 and its t2i).
``pack`` puts the chain's small results (stages.json, test JSONs, training logs, the
shapes-GenEval samples, from which ``report`` bootstraps the unified model's gap) and the
named exports into tar files under --out; ``unpack`` extracts them here, merging the
recorded stages into the local stages.json. ``report --chain baselines`` writes the
comparison table between the markers of docs/baselines.md.

The ablation chain (``--chain ablations``, docs/ablations.md) trains every Tab. 4 / Tab. 5
row of the textured world and its LLaVA model once per training seed (steps
``<recipe>.s<seed>``, seeds 0, 1, 2, each into work_dirs/<recipe>.s<seed>, each stage-2 row
from its own seed's SPC, each LLaVA row on its own seed's tokenizer) and evaluates them as
steps (``.recon``, ``.vqa``, ``.pope``); ``report --chain ablations`` writes the seeded
tables and the verdicts of the paper's claims between the GPU markers of docs/ablations.md
(the commands, call by call: that file's interpretation block).

The scaling chain (``--chain scaling``, docs/baselines.md) makes a 512-wide, 8-layer
reference LLM, pre-tokenises t2i_flat64_llm512's 200,000 scenes, trains that recipe and
keeps its shapes-GenEval (work_dirs/shapes_reference/t2i_flat64_llm512/)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.shapes_reference import CHAINS, STEPS, shapes_reference  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('command', choices=('train', 'evaluate', 'report', 'pack', 'unpack'))
    p.add_argument('files', nargs='*', help='unpack: the tar files of pack')
    p.add_argument('--only', nargs='+', choices=sorted(STEPS), metavar='STEP',
                   help='train: these steps (and the unfinished steps they need) only')
    p.add_argument('--chain', choices=sorted(CHAINS),
                   help='train / pack: the steps of this chain only; report: baselines '
                        'writes the comparison into docs/baselines.md, ablations the seeded '
                        'tables into docs/ablations.md')
    p.add_argument('--out', help='pack: the folder the tar files go to')
    p.add_argument('--exports', nargs='+', default=[], choices=sorted(STEPS), metavar='STEP',
                   help='pack: also these steps\' exports, one tar file each')
    p.add_argument('--parallel', type=int, default=4, help='steps run side by side')
    p.add_argument('--docs', default='docs')
    p.add_argument('--rfid', action='store_true', help='also rFID (slow on a CPU)')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='k=v overrides for every recipe the chain trains or pre-tokenises '
                        'with, e.g. train_cfg.max_steps=10 (smoke runs)')
    args = p.parse_args(argv)
    if args.command == 'pack' and not args.out:
        p.error('pack needs --out')
    return args


def main(argv=None):
    args = parse_args(argv)
    shapes_reference(args.command, args.files, args.only, args.chain, args.out, args.exports,
                     args.parallel, args.docs, args.rfid, args.cfg_options)


if __name__ == '__main__':
    main()
