"""Loading the HF causal LM an MLLM is built on: a local folder, or random weights from an
architecture dict (benchmarks, tests). Nothing is downloaded."""
import os

import torch


def load_llm(llm, attn_implementation='sdpa', what='llm', hint=''):
    """An fp32 HF causal LM from ``llm``: a local model folder, or
    ``dict(model_type='llama', hidden_size=..., ...)`` for a randomly initialised one.
    ``what`` names the config key in errors; ``hint`` says where to get the weights."""
    from transformers import AutoConfig, AutoModelForCausalLM
    if isinstance(llm, dict):
        arch = dict(llm)
        config = AutoConfig.for_model(arch.pop('model_type'), **arch)
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32,
                                                attn_implementation=attn_implementation)
    if not os.path.isfile(os.path.join(str(llm), 'config.json')):
        raise FileNotFoundError(f'{what}: {llm!r} is not a Hugging Face model folder (no '
                                f'config.json). {hint}')
    return AutoModelForCausalLM.from_pretrained(llm, dtype=torch.float32,
                                                attn_implementation=attn_implementation)
