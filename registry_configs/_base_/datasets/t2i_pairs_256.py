# Image-caption pairs at 256 px from webdataset shards (jpg + txt/json caption), tokenised
# on the fly by the model's frozen tokenizer. The fast path, pre-tokenised shards, is
# registry_configs/t2i_qwen25_3b_pretokenized.py. GenEval / MJHQ-30K files are local.
_base_ = ['../evaluation/t2i_geneval_mjhq.py']
train_dataloader = dict(
    batch_size=16, num_workers=8, shuffle=True,
    dataset=dict(type='WebDatasetShards', urls='data/t2i/shards/{000000..000999}.tar',
                 shuffle_buffer=5000,
                 transform=dict(type='ImageTransform', size=256, crop='center')))
