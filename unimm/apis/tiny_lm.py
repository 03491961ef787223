"""Tiny stand-ins for pretrained LLM folders: a byte-level BPE tokenizer trained on a
corpus and a randomly initialised HF causal LM, saved exactly like a downloaded
checkpoint (config.json, model.safetensors, tokenizer files), so the demo and the tests
load them through the same code as Vicuna or Qwen2.5."""
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from unimm.datasets.shapes import GENEVAL_TAGS, ShapesWorld, all_geneval_prompts

# Special tokens of the stand-in tokenizer, LLaMA's spelling
BOS, EOS, UNK, PAD = '<s>', '</s>', '<unk>', '<pad>'
ARCHS = {'llama': 'llama', 'qwen2': 'qwen2'}


def shapes_corpus(num_scenes=2000, seed=0, resolution=64):
    """Text the shapes world speaks: captions, VQA questions and answers, GenEval prompts."""
    world = ShapesWorld(seed, resolution)
    for i in range(num_scenes):
        yield world.caption(i)
        for question, answer in world.vqa(i):
            yield question
            yield answer
    for tag in GENEVAL_TAGS:
        for spec in all_geneval_prompts(tag):
            yield spec['prompt']


def train_bpe_tokenizer(texts, vocab_size=1024):
    """A byte-level BPE tokenizer (exact decode of any text, like Qwen's / GPT-2's)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[UNK, BOS, EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   unk_token=UNK, pad_token=PAD)


def make_tiny_lm(out, arch='llama', texts=None, vocab_size=1024, hidden_size=128,
                 num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=None,
                 intermediate_size=None, max_position_embeddings=1024, seed=0, extra_texts=()):
    """Write a randomly initialised ``arch`` causal LM and its tokenizer to ``out``.

    ``texts`` defaults to the shapes corpus; ``extra_texts`` (e.g. a chat template's system
    prompt) are added so that they tokenise compactly."""
    import torch
    if arch not in ARCHS:
        raise ValueError(f'make_tiny_lm: arch {arch!r} is not one of {sorted(ARCHS)}')
    corpus = list(texts if texts is not None else shapes_corpus()) + list(extra_texts)
    tokenizer = train_bpe_tokenizer(corpus, vocab_size)
    config = AutoConfig.for_model(
        ARCHS[arch], vocab_size=len(tokenizer), hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads or num_attention_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
