# Image-caption pairs at 256 px from webdataset shards (jpg + txt/json caption), tokenised
# on the fly by the model's frozen tokenizer. The fast path, pre-tokenised shards, is
# registry_configs/t2i_qwen25_3b_pretokenized.py. GenEval / MJHQ-30K files are local.
train_dataloader = dict(
    batch_size=16, num_workers=8, shuffle=True,
    dataset=dict(type='WebDatasetShards', urls='data/t2i/shards/{000000..000999}.tar',
                 shuffle_buffer=5000,
                 transform=dict(type='ImageTransform', size=256, crop='center')))
test_cfg = dict(
    geneval=dict(type='GenEvalEvaluator', metadata_file='data/geneval/evaluation_metadata.jsonl',
                 n_samples=4, batch_size=32, sampling=dict(cfg_scale=4.0, top_k=0, top_p=1.0),
                 geneval_root=None, detector_path=None),
    mjhq=dict(type='MJHQEvaluator', meta_file='data/mjhq30k/meta_data.json',
              reference_root='data/mjhq30k/mjhq30k_imgs', batch_size=32,
              sampling=dict(cfg_scale=4.0)))
