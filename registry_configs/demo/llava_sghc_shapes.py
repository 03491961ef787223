# Understanding demo (LLaVA-1.5 recipe, one phase): SGHC tokens of the demo SemHiTok
# (semantic ‖ texture features) -> mlp2x_gelu -> a tiny random LLaMA, trained on shapes
# VQA (projector + LLM; a random LLM has nothing to align to in a projector-only phase).
# Needs work_dirs/sghc_shapes/export (tools/run_demo.sh) and work_dirs/tiny_llama
# (python tools/make_tiny_lm.py --arch llama --out work_dirs/tiny_llama).
_base_ = ['../_base_/schedules/adamw_cosine.py', '../_base_/default_runtime.py']
_llm = 'work_dirs/tiny_llama'
model = dict(
    type='UnderstandingMLLM',
    vision=dict(type='TokenizerFeatures', tokenizer='work_dirs/sghc_shapes/export'),
    llm=_llm, projector=dict(type='MLPProjector', kind='mlp2x_gelu'), template='vicuna_v1',
    train_llm=True)
train_dataloader = dict(
    batch_size=8, num_workers=1, shuffle=True, group_by_length=True,
    dataset=dict(type='ShapesLLaVADataset', tokenizer=_llm, kind='vqa', seed=0, resolution=64,
                 start=0, length=20000, template='vicuna_v1', num_image_tokens=64,
                 max_length=512, turns=8))
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.0))
param_scheduler = dict(warmup_steps=15)
train_cfg = dict(max_steps=1000, log_interval=10)
checkpoint = dict(interval=500)
test_cfg = dict(
    vqa=dict(type='ShapesVQAEvaluator', batch_size=50, max_questions=1000,
             dataset=dict(type='ShapesVQADataset', seed=0, resolution=64, start=100000,
                          length=100)),
    lmms=dict(type='LmmsEvalEvaluator', tasks=['shapes_vqa', 'shapes_vqa_yesno'], limit=None))
