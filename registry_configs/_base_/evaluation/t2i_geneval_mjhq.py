# Text-to-image evaluation: GenEval (4 images per prompt of its evaluation_metadata.jsonl) and
# MJHQ-30K FID against local reference images, both sampled with CFG scale 4.
test_cfg = dict(
    geneval=dict(type='GenEvalEvaluator', metadata_file='data/geneval/evaluation_metadata.jsonl',
                 n_samples=4, batch_size=32, sampling=dict(cfg_scale=4.0, top_k=0, top_p=1.0),
                 geneval_root=None, detector_path=None),
    mjhq=dict(type='MJHQEvaluator', meta_file='data/mjhq30k/meta_data.json',
              reference_root='data/mjhq30k/mjhq30k_imgs', batch_size=32,
              sampling=dict(cfg_scale=4.0)))
