from setuptools import find_packages, setup

setup(
    name='unimm',
    version='0.1.0',
    description='Unified multimodal LLMs on discrete image tokenizers: SemHiTok and its peers',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['unimm', 'unimm.*']),
    package_data={'unimm.evaluation': ['lmms_tasks/*/*.yaml', 'lmms_tasks/*/*.json']},
    python_requires='>=3.10',
    # torch / torchvision are installed first, as a matched pair (README: Install).
    # sentencepiece < 0.2.3: 0.2.3's model proto needs protobuf >= 7.36, which the lmms
    # extra's wandb (protobuf < 7) rules out; transformers then cannot read a LLaMA
    # tokenizer.model (0.2.2 works with protobuf 6 and 7)
    install_requires=[
        'torch>=2.4', 'torchvision', 'mmengine==0.10.7', 'deepspeed==0.19.8',
        'transformers>=5.24', 'tokenizers', 'sentencepiece>=0.2,<0.2.3', 'safetensors', 'timm',
        'numpy', 'pillow', 'scipy', 'tqdm', 'tensorboard', 'webdataset', 'braceexpand',
        'lpips==0.1.4', 'torch-fidelity==0.4.0',
    ],
    extras_require={
        # selenium drives the system Chromium in the web demo's browser test
        'dev': ['pytest', 'scikit-image', 'selenium==4.51.0'],
        # the web demo (tools/app.py); gradio 6 caps pillow below 13
        'app': ['gradio==6.31.0'],
        # lmms-eval 0.7.3 patches filelock._api, which filelock 4 removed
        'lmms': ['lmms-eval==0.7.3', 'filelock<4'],
    },
    # `python -m lmms_eval --model unimm` (lmms-eval 0.7 reads this group into its registry)
    entry_points={'lmms_eval.models': ['unimm = unimm.evaluation.lmms_model:manifest']},
)
