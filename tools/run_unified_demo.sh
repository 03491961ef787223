#!/usr/bin/env bash
# The unified demo (docs/unified.md): one tiny LLaMA trained on shapes VQA and shapes
# text-to-image together (registry_configs/demo/unified_shapes.py), against the two
# single-task demos with the same budget — the same LLM, steps, batch size, optimiser and
# schedule — each scored on held-out shapes VQA and shapes GenEval, then the table.
# Needs tools/run_demo.sh's tokenizer export; STEPS / BATCH override the budget. FULL=1
# also trains (docs/unified.md's table) the unified model with each task's own batch size
# (2x samples: each task sees as many samples as its single-task model) and a second seed
# of the unified and the understanding-only run.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-1000}
batch=${BATCH:-8}
llm=work_dirs/tiny_llama
[ -d $llm ] || python tools/make_tiny_lm.py --arch llama --out $llm \
    --extra-text "$(python -c 'from unimm.models.mllm.conversation import VICUNA_SYSTEM as s; print(s)')"
[ -d work_dirs/t2i_shapes_tokens ] || \
    python tools/pretokenize.py registry_configs/demo/t2i_shapes.py --source _source_dataset \
        --out work_dirs/t2i_shapes_tokens
common=(train_cfg.max_steps=$steps train_dataloader.batch_size=$batch deepspeed.zero_stage=0
        optim_wrapper.optimizer.lr=1e-3 optim_wrapper.optimizer.weight_decay=0.0
        param_scheduler.warmup_steps=15 param_scheduler.min_lr_ratio=0.05
        train_dataloader.num_workers=0 log_cfg.tensorboard=False)
run() {  # NAME CONFIG [cfg-options...]
    local name=$1 config=$2; shift 2
    [ -f work_dirs/$name/export/config.json ] || \
        python tools/train.py $config --work-dir work_dirs/$name --cfg-options "${common[@]}" "$@"
}
run unified_shapes registry_configs/demo/unified_shapes.py
run unified_shapes_und registry_configs/demo/llava_sghc_shapes.py \
    train_dataloader.group_by_length=False train_dataloader.dataset.length=5000
run unified_shapes_gen registry_configs/demo/t2i_shapes.py model.llm=$llm
# every export is scored with unified_shapes.py's test_cfg; model.type names the
# export's class for the single-task ones
uni=registry_configs/demo/unified_shapes.py
score() {  # NAME MODEL_TYPE TASK...
    local name=$1 type=$2; shift 2
    for task in "$@"; do
        python tools/test.py $uni work_dirs/$name/export --task $task --cfg-options model.type=$type
    done
}
score unified_shapes UnifiedMLLM vqa heldout_loss_und shapes_geneval heldout_loss_gen
score unified_shapes_und UnderstandingMLLM vqa heldout_loss_und
score unified_shapes_gen GenerationMLLM shapes_geneval heldout_loss_gen
python tools/test.py $uni work_dirs/unified_shapes/export --task shapes_geneval_random \
    --work-dir work_dirs/unified_shapes/random
runs=(unified=work_dirs/unified_shapes/export
      "understanding only=work_dirs/unified_shapes_und/export"
      "generation only=work_dirs/unified_shapes_gen/export")
if [ "${FULL:-0}" = 1 ]; then
    run unified_shapes_matched $uni train_dataloader.batch_size=$((2 * batch))
    score unified_shapes_matched UnifiedMLLM vqa heldout_loss_und shapes_geneval heldout_loss_gen
    run unified_shapes_seed1 $uni randomness.seed=1 train_dataloader.dataset.seed=1 \
        train_dataloader.dataset.generation.seed=1
    score unified_shapes_seed1 UnifiedMLLM vqa heldout_loss_und shapes_geneval heldout_loss_gen
    run unified_shapes_und_seed1 registry_configs/demo/llava_sghc_shapes.py randomness.seed=1 \
        train_dataloader.group_by_length=False train_dataloader.dataset.length=5000
    score unified_shapes_und_seed1 UnderstandingMLLM vqa heldout_loss_und
    runs=(unified=work_dirs/unified_shapes/export
          "unified (seed 1)=work_dirs/unified_shapes_seed1/export"
          "understanding only=work_dirs/unified_shapes_und/export"
          "understanding only (seed 1)=work_dirs/unified_shapes_und_seed1/export"
          "generation only=work_dirs/unified_shapes_gen/export"
          "unified, matched=work_dirs/unified_shapes_matched/export")
fi
python tools/unified_table.py "${runs[@]}" --random work_dirs/unified_shapes/random
