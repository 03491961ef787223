# LLaVA-1.5 phase 2 on SemHiTok: projector + Vicuna-7B on LLaVA-v1.5-mix-665K with the
# Vicuna-v1 template, length-grouped batches. 8 GPUs x 16 = global batch 128, lr 2e-5,
# 1 epoch, 3% warm-up, cosine, ZeRO-3, bf16, gradient checkpointing.
# Data: data/llava/llava_v1_5_mix665k.json with its images (coco, gqa, ocr_vqa, textvqa,
# vg) under data/llava/images. Starts from phase 1's projector.
_base_ = ['./llava_vicuna7b_sghc_pretrain.py']
model = dict(train_llm=True, projector_from='work_dirs/llava_vicuna7b_sghc_pretrain/export')
train_dataloader = dict(
    batch_size=16, num_workers=8, group_by_length=True,
    dataset=dict(_delete_=True, type='LLaVADataset',
                 data_path='data/llava/llava_v1_5_mix665k.json', image_folder='data/llava/images',
                 tokenizer='checkpoints/vicuna-7b-v1.5', template='vicuna_v1', num_image_tokens=256,
                 image_size=256, max_length=2048))
optim_wrapper = dict(optimizer=dict(lr=2e-5))
deepspeed = dict(zero_stage=3)
checkpoint = dict(interval=1000)
# The paper's understanding benchmarks, as lmms-eval names them. MMBench-EN dev is the
# `_static` variant: the letter is read from the answer by rules, offline (mmbench_en_dev
# asks an OpenAI model when the rules fail, which needs a key and the network).
test_cfg = dict(lmms=dict(type='LmmsEvalEvaluator',
                          tasks=['mme', 'pope', 'gqa', 'seedbench', 'mmbench_en_dev_static',
                                 'mmmu_val'],
                          batch_size=1))
