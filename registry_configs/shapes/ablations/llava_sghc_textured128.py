# Ablation (Tab. 4, understanding), textured world: llava_sghc_flat64's recipe (reference
# LLaMA work_dirs/reference_llama, projector + LLM trained on shapes VQA over 100k scenes,
# 4000 steps) on sghc_textured128's features (semantic ‖ texture, 16x16 tokens), scored on
# held-out textured scenes: shapes-VQA exact match and the POPE-style yes/no task
# (adversarial negatives), by the in-repo evaluators and by lmms-eval.
_base_ = ['../llava_sghc_flat64.py']
_world = dict(seed=0, resolution=128, texture=True)
model = dict(vision=dict(tokenizer='work_dirs/sghc_textured128/export'))
train_dataloader = dict(dataset=dict(_world, num_image_tokens=256, max_length=768))
test_cfg = dict(
    vqa=dict(dataset=dict(type='ShapesVQADataset', start=100000, length=100, **_world)),
    pope=dict(type='ShapesPOPEEvaluator', batch_size=50, max_questions=1000,
              dataset=dict(type='ShapesPOPEDataset', start=100000, length=250,
                           strategy='adversarial', **_world)),
    lmms=dict(tasks=['shapes_vqa_textured', 'shapes_pope_textured']))
