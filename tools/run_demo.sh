#!/usr/bin/env bash
# The shapes-world demo, end to end on a CPU: stage 0 teacher -> SPC -> SGHC, then
# held-out retrieval of the teacher and reconstruction of the tokenizer.
# Each stage reads the previous one's export from work_dirs/.
set -euo pipefail
cd "$(dirname "$0")/.."
python tools/train.py registry_configs/demo/shapes_siglip.py
python tools/test.py registry_configs/demo/shapes_siglip.py work_dirs/shapes_siglip/export --task retrieval
python tools/train.py registry_configs/demo/spc_shapes.py
python tools/train.py registry_configs/demo/sghc_shapes.py
python tools/test.py registry_configs/demo/sghc_shapes.py work_dirs/sghc_shapes/export --task recon
