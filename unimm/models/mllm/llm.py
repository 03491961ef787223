"""Loading the HF causal LM an MLLM is built on (a local folder, or random weights from an
architecture dict: benchmarks, tests; nothing is downloaded), its text tokenizer, and
loading exported MLLMs."""
import json
import os

import torch
from transformers import AutoTokenizer


def load_llm(llm, attn_implementation='sdpa', what='llm', hint=''):
    """An fp32 HF causal LM from ``llm``: a local model folder, or
    ``dict(model_type='llama', hidden_size=..., ...)`` for a randomly initialised one.
    ``what`` names the config key in errors; ``hint`` says where to get the weights."""
    from transformers import AutoConfig, AutoModelForCausalLM
    if isinstance(llm, dict):
        arch = dict(llm)
        config = AutoConfig.for_model(arch.pop('model_type'), **arch)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32,
                                                 attn_implementation=attn_implementation)
    elif not os.path.isfile(os.path.join(str(llm), 'config.json')):
        raise FileNotFoundError(f'{what}: {llm!r} is not a Hugging Face model folder (no '
                                f'config.json). {hint}')
    else:
        model = AutoModelForCausalLM.from_pretrained(llm, dtype=torch.float32,
                                                     attn_implementation=attn_implementation)
    # the `compile` key compiles the decoder layers one by one; the causal-LM and decoder
    # forwards, which build masks from the batch and compute the loss, stay eager
    model.compile_children = model.get_decoder().compile_children = True
    return model


def load_text_tokenizer(folder, what):
    """A fast HF tokenizer from a local folder, with a message saying what to put there."""
    if not folder or not os.path.isdir(folder):
        raise FileNotFoundError(
            f'{what}: tokenizer folder {folder!r} not found. Put a Hugging Face model folder '
            'there (e.g. `huggingface-cli download lmsys/vicuna-7b-v1.5 --local-dir '
            'checkpoints/vicuna-7b-v1.5`), or '
            'for the demo run: python tools/make_tiny_lm.py --arch llama --out '
            'work_dirs/tiny_llama')
    tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True)
    if tokenizer.pad_token_id is None:  # LLaMA has none; padding is masked anyway
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def enable_gradient_checkpointing(llm):
    """HF gradient checkpointing (non-reentrant); the KV cache is off while training."""
    llm.config.use_cache = False
    llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={'use_reentrant': False})


def load_exported(config, checkpoint):
    """The MLLM exported to ``checkpoint`` (``<work_dir>/export``): of the type its own
    config.json names, else of the type the training ``config`` names."""
    from mmengine.config import Config

    from unimm.registry import MODELS
    if not os.path.isdir(str(checkpoint)):
        raise FileNotFoundError(f'{checkpoint} is not a folder: pass the exported model folder '
                                'that tools/train.py writes to <work_dir>/export')
    type_ = None
    cfg_file = os.path.join(checkpoint, 'config.json')
    if os.path.isfile(cfg_file):
        with open(cfg_file) as f:
            type_ = json.load(f).get('type')
    if type_ is None:
        type_ = Config.fromfile(config).model.type if config else 'UnderstandingMLLM'
    return MODELS.get(type_).from_pretrained(checkpoint)
