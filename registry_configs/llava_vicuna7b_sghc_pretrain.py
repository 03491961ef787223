# LLaVA-1.5 phase 1 on SemHiTok: train the mlp2x_gelu projector only, on
# LLaVA-Pretrain-558K captions (the 'plain' template), Vicuna-7B v1.5 frozen.
# 8 GPUs x 32 = global batch 256, lr 1e-3, 1 epoch, 3% warm-up, cosine, ZeRO-2, bf16.
# Data: data/llava/LLaVA-Pretrain/{blip_laion_cc_sbu_558k.json,images/};
# LLM: checkpoints/vicuna-7b-v1.5 (huggingface-cli download lmsys/vicuna-7b-v1.5 --local-dir ...);
# tokenizer: the SemHiTok export of registry_configs/enhance_decoder_vitl.py.
_base_ = ['./_base_/default_runtime.py']
_llm = 'checkpoints/vicuna-7b-v1.5'
_tokenizer = 'work_dirs/enhance_decoder_vitl/export'
_num_image_tokens = 256  # SigLIP-L/16 at 256 px
model = dict(
    type='UnderstandingMLLM',
    vision=dict(type='TokenizerFeatures', tokenizer=_tokenizer, llm_features='concat'),
    llm=_llm, projector=dict(type='MLPProjector', kind='mlp2x_gelu'), template='vicuna_v1',
    train_llm=False, gradient_checkpointing=True)
train_dataloader = dict(
    batch_size=32, num_workers=8, shuffle=True, group_by_length=False,
    dataset=dict(type='LLaVADataset', data_path='data/llava/LLaVA-Pretrain/'
                 'blip_laion_cc_sbu_558k.json', image_folder='data/llava/LLaVA-Pretrain/images',
                 tokenizer=_llm, template='plain', num_image_tokens=_num_image_tokens,
                 image_size=256, max_length=2048))
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0),
                     clip_grad=1.0)
param_scheduler = dict(type='WarmupCosine', warmup_ratio=0.03, min_lr_ratio=0.0)
train_cfg = dict(max_epochs=1, log_interval=10)
checkpoint = dict(interval=500, max_keep=2)
deepspeed = dict(zero_stage=2, precision='bf16')
