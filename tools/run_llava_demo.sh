#!/usr/bin/env bash
# The understanding demo: the same LLaVA recipe (tiny LLaMA, shapes VQA) on three vision
# sides - continuous teacher features, SPC tokens, SGHC tokens - then held-out VQA for
# each and the table of docs/understanding.md. Needs tools/run_demo.sh's exports.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d work_dirs/tiny_llama ] || python tools/make_tiny_lm.py --arch llama --out work_dirs/tiny_llama \
    --extra-text "$(python -c 'from unimm.models.mllm.conversation import VICUNA_SYSTEM as s; print(s)')"
for variant in siglip spc sghc; do
    python tools/train.py registry_configs/demo/llava_${variant}_shapes.py "$@"
    python tools/test.py registry_configs/demo/llava_${variant}_shapes.py \
        work_dirs/llava_${variant}_shapes/export --task vqa
done
python tools/vqa_table.py siglip=work_dirs/llava_siglip_shapes/export \
    spc=work_dirs/llava_spc_shapes/export sghc=work_dirs/llava_sghc_shapes/export
