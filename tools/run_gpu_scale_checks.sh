#!/usr/bin/env bash
# Issue 8 on a machine with 2 GPUs, unattended, in under 8 minutes; everything random or
# synthetic (no pretrained weights, no data sets, no internet). Writes to $OUT:
#   twins/<stage>/config.py       the recipes' small twins (tools/benchmark.py twin)
#   runs/<run>/log.jsonl          training runs (tools/train.py under python / torchrun /
#                                 deepspeed), checkpoints pruned at the end
#   traces.txt, traces.json       1 vs 2 GPUs at the same global batch, and resumes across
#                                 world sizes (tools/compare_logs.py, max relative diff)
#   bench/<name>.json             tools/benchmark.py train and loader figures
#   logs/<step>.log, status.txt   every step's output, rc and elapsed seconds
#   summary.json                  all of the above in one file
# Usage: OUT=/path bash tools/run_gpu_scale_checks.sh
# Knobs: STEPS (trace steps, 24), BUDGET_S (480), SERIAL=1 (no concurrent runs),
#        STAGES ("tok und gen": whose traces run), BENCH=0 (no throughput part), LOADER=0,
#        ANCHOR=path/to/anchor_train_mfu.py (run it too, if time remains), PYTHON;
#        SCALE=tiny EXTRA=deepspeed.precision=fp32 rehearse the trace part on a CPU.
set -u
: "${OUT:?set OUT to the output folder}"
ROOT=${UNIMM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$ROOT"
PY=${PYTHON:-python}
STEPS=${STEPS:-24}
HALF=$((STEPS / 2))
BUDGET_S=${BUDGET_S:-480}
SERIAL=${SERIAL:-0}
SCALE=${SCALE:-small}   # tiny: a CPU rehearsal of the shell logic
STAGES=${STAGES:-tok und gen}
BENCH=${BENCH:-1}
EXTRA=${EXTRA:-}        # more --cfg-options for every training run (CPU: deepspeed.precision=fp32)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
mkdir -p "$OUT"/{twins,runs,bench,logs}
START=$(date +%s)
: > "$OUT/status.txt"

left() { echo $((BUDGET_S - ($(date +%s) - START))); }

# step NAME LIMIT_S CMD...: run with a timeout cut to the remaining budget; log rc + time
step() {
  local name=$1 limit=$2; shift 2
  local remaining; remaining=$(left)
  if (( remaining < 20 )); then
    echo "$name skipped: budget spent" | tee -a "$OUT/status.txt"; return 124
  fi
  (( limit > remaining - 10 )) && limit=$((remaining - 10))
  local t0; t0=$(date +%s)
  timeout --signal=TERM --kill-after=20 "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc ${limit}s-limit took=$(( $(date +%s) - t0 ))s at=$(( $(date +%s) - START ))s" \
    | tee -a "$OUT/status.txt"
  return $rc
}

# par: run the given step calls concurrently unless SERIAL=1 ("fn args" strings)
par() {
  if [[ $SERIAL == 1 ]]; then
    for call in "$@"; do eval "$call"; done
  else
    for call in "$@"; do eval "$call" & done
    wait
  fi
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpus.txt" 2>&1
MEM_MB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1)
MEM_MB=${MEM_MB:-81559}
"$PY" -c "import torch, deepspeed, transformers; print(torch.__version__, deepspeed.__version__, transformers.__version__)" \
  > "$OUT/versions.txt" 2>&1

# ---------------------------------------------------------------- 0. the small twins
# tokenizer stage 2 (SGHC, ViT enc/dec, LPIPS, PatchGAN), understanding phase 2 (LLaVA-1.5
# finetune on a SemHiTok), generation (Qwen2.5 family on SemHiTok tokens)
declare -A RECIPE=([tok]=registry_configs/sghc_vitb.py
                   [und]=registry_configs/llava_vicuna7b_sghc_finetune.py
                   [gen]=registry_configs/t2i_qwen25_3b.py)
par "step twin_tok 120 $PY tools/benchmark.py twin --config ${RECIPE[tok]} --scale $SCALE --out $OUT/twins/tok" \
    "step twin_und 120 $PY tools/benchmark.py twin --config ${RECIPE[und]} --scale $SCALE --out $OUT/twins/und" \
    "step twin_gen 120 $PY tools/benchmark.py twin --config ${RECIPE[gen]} --scale $SCALE --out $OUT/twins/gen"

# same global batch on 1 and 2 GPUs; a short warm-up so the trace moves; the GAN on from
# step 1. Off: what draws per-rank randomness by design (SGHC dead-sub-code restarts
# sample rows of a rank's batch; the generation recipe's caption drop). LLaVA's loss is a
# token mean per rank, so 1 vs 2 GPUs differ by the answer-length imbalance (~5e-4 in fp32).
COMMON="train_cfg.max_steps=$STEPS train_cfg.log_interval=1 checkpoint.interval=$HALF
        checkpoint.max_keep=4 log_cfg.tensorboard=False param_scheduler.warmup_steps=2
        train_dataloader.num_workers=2"
declare -A OPTS=([tok]="$COMMON train_cfg.global_batch_size=32 discriminator.start_step=0
                        model.pixel_quantizer.restart=False"
                 [und]="$COMMON train_cfg.global_batch_size=16"
                 [gen]="$COMMON train_cfg.global_batch_size=32 model.uncond_prob=0.0")
one() {  # one NAME STAGE GPU ZERO [extra train.py args]
  local name=$1 stage=$2 gpu=$3 zero=$4; shift 4
  CUDA_VISIBLE_DEVICES=$gpu step "$name" 240 "$PY" tools/train.py "$OUT/twins/$stage/config.py" \
    --work-dir "$OUT/runs/$name" "$@" --cfg-options ${OPTS[$stage]} deepspeed.zero_stage=$zero $EXTRA
}
two() {  # two NAME STAGE PORT ZERO LAUNCHER [extra train.py args]
  local name=$1 stage=$2 port=$3 zero=$4 launcher=$5; shift 5
  local launch=("$PY" -m torch.distributed.run --nproc_per_node 2 --master_port "$port")
  # the deepspeed launcher through this Python (its console script may carry another shebang)
  [[ $launcher == deepspeed ]] && launch=("$PY" -m deepspeed.launcher.runner --num_gpus 2
                                          --master_port "$port")
  step "$name" 240 "${launch[@]}" tools/train.py "$OUT/twins/$stage/config.py" \
    --work-dir "$OUT/runs/$name" "$@" --cfg-options ${OPTS[$stage]} deepspeed.zero_stage=$zero $EXTRA
}

# ---------------------------------------------------------------- 1. 1 GPU vs 2 GPUs
has() { [[ " $STAGES " == *" $1 "* ]]; }
runs1=() runs2=() resumes=()
# tok controls: the same 1-GPU run again (the noise floor of this bf16 GAN trace: its
# adversarial terms amplify the GPU's non-deterministic rounding) and the 1 vs 2 GPU pair in
# fp32, from which the GAN's resumes across world sizes start
has tok && { runs1+=("one tok_1gpu tok 0 2" "one tok_1gpu_again tok 1 2"
                     "EXTRA='$EXTRA deepspeed.precision=fp32' one tok_1gpu_fp32 tok 1 2")
             runs2+=("two tok_2gpu tok 29510 2 torchrun"
                     "EXTRA='$EXTRA deepspeed.precision=fp32' two tok_2gpu_fp32 tok 29515 2 torchrun")
             resumes+=("EXTRA='$EXTRA deepspeed.precision=fp32' one tok_2to1_fp32 tok 0 2 --resume $OUT/runs/tok_2gpu_fp32/CK"
                       "EXTRA='$EXTRA deepspeed.precision=fp32' two tok_1to2_fp32 tok 29514 2 torchrun --resume $OUT/runs/tok_1gpu_fp32/CK"); }
has und && { runs1+=("one und_1gpu und 1 2");
             runs2+=("two und_2gpu und 29511 2 torchrun" "two und_2gpu_zero3 und 29513 3 torchrun");
             resumes+=("one und_zero3_2to1 und 1 3 --resume $OUT/runs/und_2gpu_zero3/CK"); }
has gen && { runs1+=("one gen_1gpu gen 0 2"); runs2+=("two gen_2gpu gen 29512 2 deepspeed"); }
(( ${#runs1[@]} )) && par "${runs1[@]}"
(( ${#runs2[@]} )) && par "${runs2[@]}"

# ---------------------------------------------------------------- 2. resume across world sizes
CK=checkpoints/step_$(printf %08d "$HALF")
(( ${#resumes[@]} )) && par "${resumes[@]//CK/$CK}"

cmp() {  # cmp LABEL REF RUN [compare_logs args]
  local label=$1 ref=$2 run=$3; shift 3
  [[ -d $OUT/runs/$ref || -d $OUT/runs/$run ]] || return 0
  {
    echo "## $label"
    "$PY" tools/compare_logs.py "$OUT/runs/$ref" "$OUT/runs/$run" --json "$OUT/logs/cmp_$label.json" "$@"
    echo
  } >> "$OUT/traces.txt" 2>&1
}
: > "$OUT/traces.txt"
cmp tok_1v2 tok_1gpu tok_2gpu
cmp tok_noise_floor_1gpu_twice tok_1gpu tok_1gpu_again
cmp tok_1v2_fp32 tok_1gpu_fp32 tok_2gpu_fp32
cmp und_1v2 und_1gpu und_2gpu
cmp und_1v2_zero3 und_1gpu und_2gpu_zero3
cmp gen_1v2_deepspeed_launcher gen_1gpu gen_2gpu
cmp tok_resume_2to1_fp32 tok_2gpu_fp32 tok_2to1_fp32 --steps $((HALF + 1)):
cmp tok_resume_1to2_fp32 tok_1gpu_fp32 tok_1to2_fp32 --steps $((HALF + 1)):
cmp und_zero3_resume_2to1 und_2gpu_zero3 und_zero3_2to1 --steps $((HALF + 1)):
cat "$OUT/traces.txt"
"$PY" - "$OUT" <<'EOF2'
import glob, json, os, sys
out = sys.argv[1]
rows = {os.path.basename(p)[4:-5]: json.load(open(p)) for p in sorted(glob.glob(f'{out}/logs/cmp_*.json'))}
json.dump(rows, open(f'{out}/traces.json', 'w'), indent=2)
EOF2
find "$OUT/runs" -path '*/checkpoints/*' -prune -exec rm -rf {} + 2>/dev/null
find "$OUT/runs" -name export\* -type d -prune -exec rm -rf {} + 2>/dev/null

# ---------------------------------------------------------------- 3. throughput (exclusive)
bench() {  # bench NAME GPUS LIMIT [benchmark.py train args]
  local name=$1 gpus=$2 limit=$3; shift 3
  if [[ $gpus == 2 ]]; then
    step "bench_$name" "$limit" "$PY" -m torch.distributed.run --nproc_per_node 2 --master_port 29520 \
      tools/benchmark.py train --json "$OUT/bench/$name.json" "$@"
  else
    CUDA_VISIBLE_DEVICES=$gpus step "bench_$name" "$limit" "$PY" tools/benchmark.py train \
      --json "$OUT/bench/$name.json" "$@"
  fi
}
if [[ $BENCH == 1 ]]; then
  # the two tokenizer stages (with the raw stack each, same process) on one GPU each
  par "bench sghc_stage2_1gpu 0 150 --config registry_configs/sghc_vitb.py --batch 32" \
      "bench sghc_stage3_1gpu 1 150 --config registry_configs/enhance_decoder_vitl.py --batch 32"
  # generation at the anchor's micro-batch (8 x 512 tokens) and 8 of them a step (32k tokens,
  # the recipe's 16 packed 4096-token rows make 64k): without checkpointing (the anchor's
  # 44 % setting) and with it (the recipe's), then on 2 GPUs
  G="--config ${RECIPE[gen]} --batch 8 --seq 512 --accum 8 --steps 4 --warmup 1"
  bench qwen3b_gen_1gpu 0 150 $G --cfg-options model.gradient_checkpointing=False
  bench qwen3b_gen_1gpu_ckpt 0 150 $G
  bench qwen3b_gen_2gpu 2 150 $G --cfg-options model.gradient_checkpointing=False
  B7=4; (( MEM_MB > 120000 )) && B7=8
  bench vicuna7b_und_zero3_2gpu 2 240 --config ${RECIPE[und]} --batch $B7 --seq 2048 --accum 2 \
    --steps 4 --warmup 1
  if [[ -n ${ANCHOR:-} && -f ${ANCHOR:-} ]]; then
    CUDA_VISIBLE_DEVICES=0 step anchor_train_mfu 150 "$PY" "$ANCHOR"
  fi
  # the data path on this host (CPU only): samples/s through the recipes' loaders
  if [[ ${LOADER:-1} == 1 ]]; then
    for recipe in t2i_qwen25_3b sghc_vitb t2i_qwen25_3b_pretokenized; do
      step "loader_$recipe" 75 "$PY" tools/benchmark.py loader --config registry_configs/$recipe.py \
        --batches 60 --json "$OUT/bench/loader_$recipe.json"
    done
  fi
fi

# ---------------------------------------------------------------- 4. summary
"$PY" - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError) as err:
        return {'error': str(err)}
failed = {}
for line in open(f'{out}/status.txt').read().splitlines():
    name, _, rest = line.partition(' rc=')
    if rest and not rest.startswith('0 ') and os.path.isfile(f'{out}/logs/{name}.log'):
        failed[name] = open(f'{out}/logs/{name}.log', errors='replace').read().splitlines()[-25:]
summary = {'failed_steps_log_tails': failed,
           'gpus': open(f'{out}/gpus.txt').read().strip(),
           'versions': open(f'{out}/versions.txt').read().strip(),
           'status': open(f'{out}/status.txt').read().splitlines(),
           'traces': load(f'{out}/traces.json'),
           'bench': {os.path.basename(p)[:-5]: load(p) for p in sorted(glob.glob(f'{out}/bench/*.json'))}}
if os.path.isfile(f'{out}/logs/anchor_train_mfu.log'):
    summary['anchor_train_mfu'] = [json.loads(line) for line in open(f'{out}/logs/anchor_train_mfu.log')
                                   if line.startswith('{')]
json.dump(summary, open(f'{out}/summary.json', 'w'), indent=2)
for name, b in summary['bench'].items():
    keys = ('device', 'world_size', 'zero_stage', 'batch_per_rank', 'accumulation', 'step_s',
            'img_s', 'raw_img_s',
            'vs_raw', 'tokens_s', 'mfu_vs_795tflops', 'peak_mem_GB_rank0', 'samples_per_s',
            'num_workers', 'error')
    print(name, {k: b[k] for k in keys if k in b})
for row in summary.get('anchor_train_mfu', []):
    print('anchor_train_mfu', row)
EOF
echo "done in $(( $(date +%s) - START ))s; results in $OUT"
