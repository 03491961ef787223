#!/usr/bin/env bash
# The text-to-image demo on a CPU (needs the demo tokenizer: bash tools/run_demo.sh):
# a tiny Qwen2, pre-tokenised shapes captions, the flat and the factorized visual head,
# each scored with the exact shapes-GenEval scorer next to the random-token baseline.
# Extra arguments are --cfg-options for every step, e.g. another tokenizer export:
#   bash tools/run_t2i_demo.sh model.image_tokenizer=work_dirs/sghc_shapes_short/export
set -euo pipefail
cd "$(dirname "$0")/.."
opts=()
[ $# -gt 0 ] && opts=(--cfg-options "$@")
[ -f work_dirs/tiny_qwen2/config.json ] || \
    python tools/make_tiny_lm.py --arch qwen2 --out work_dirs/tiny_qwen2
[ -d work_dirs/t2i_shapes_tokens ] || \
    python tools/pretokenize.py registry_configs/demo/t2i_shapes.py --source _source_dataset \
        --out work_dirs/t2i_shapes_tokens "${opts[@]}"
python tools/train.py registry_configs/demo/t2i_shapes.py "${opts[@]}"
python tools/train.py registry_configs/demo/t2i_shapes_factorized.py "${opts[@]}"
for name in t2i_shapes t2i_shapes_factorized; do
    python tools/test.py registry_configs/demo/$name.py work_dirs/$name/export --task shapes_geneval "${opts[@]}"
done
for bound in random reconstruction; do
    python tools/test.py registry_configs/demo/t2i_shapes.py work_dirs/t2i_shapes/export \
        --task shapes_geneval_$bound --work-dir work_dirs/t2i_shapes/$bound "${opts[@]}"
done
