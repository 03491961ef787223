# LLaVA-1.5 phase 2 as llava_vicuna7b_sghc_finetune.py, faster where memory allows: ZeRO-2
# instead of ZeRO-3 (no parameter gathers) and the LLM's decoder layers compiled. Every GPU
# holds the bf16 weights (13.4 GB) next to its share of the fp32 master weights and Adam
# states (80 GB over the GPUs): 89 GB a GPU measured on 2 GPUs at 8 x 2048 tokens, so
# 141 GB cards, or 80 GB cards from about 8 GPUs (docs/performance.md).
_base_ = ['./llava_vicuna7b_sghc_finetune.py']
deepspeed = dict(zero_stage=2)
compile = dict(dynamic=None)  # rows change length per batch: one recompile to dynamic shapes
