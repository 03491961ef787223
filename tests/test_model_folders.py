"""Pretrained folders laid out as the hub lays them out, as tiny stand-ins, loaded through
the recipes' own code: a Vicuna-v1.5-style LLaMA (fp16 ``.bin`` shards, a sentencepiece
``tokenizer.model`` and no tokenizer.json), a Qwen2.5-style Qwen2 (bf16 safetensors shards
with an index, tokenizer.json, vocab.json, merges.txt), and a SigLIP folder as
transformers saves it (``spiece.model`` tokenizer) used as SemHiTok's semantic encoder."""
import io
import json
import os
import shutil

import pytest
import torch

from unimm.apis.tiny_lm import shapes_corpus
from unimm.models.base import PretrainedMixin
from unimm.models.mllm.conversation import IGNORE_INDEX, get_template, tokenize_conversation
from unimm.registry import MODELS

CORPUS = list(shapes_corpus(num_scenes=300))
QUESTION = [{'from': 'human', 'value': '<image>\nwhat colour is the circle?'}]
CONVERSATION = QUESTION + [{'from': 'gpt', 'value': 'the circle is red'}]


def images(n=2, side=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, side, side, generator=g) * 2 - 1


def train_sentencepiece(texts, vocab_size, model_type, byte_fallback, **ids):
    """A sentencepiece model (serialised proto) trained on ``texts``; ``ids``: the special
    ids (``unk_id``, ``bos_id``, ``eos_id``, ``pad_id``; -1 leaves one out)."""
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=buf,
                                   vocab_size=vocab_size, model_type=model_type,
                                   byte_fallback=byte_fallback, character_coverage=1.0,
                                   minloglevel=2, **ids)
    return buf.getvalue()


def write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)


# ------------------------------------------------------------------------ the folders
@pytest.fixture(scope='module')
def vicuna(tmp_path_factory):
    """lmsys/vicuna-7b-v1.5's layout: config.json (float16), generation_config.json (with
    sampling on), two ``pytorch_model-0000k-of-00002.bin`` fp16 shards and their index,
    ``tokenizer.model`` (sentencepiece, LLaMA's special ids), tokenizer_config.json and
    special_tokens_map.json. No tokenizer.json."""
    from transformers import LlamaConfig, LlamaForCausalLM
    folder = tmp_path_factory.mktemp('vicuna-7b-v1.5')
    template = get_template('vicuna_v1')
    sp = train_sentencepiece(CORPUS + [template.system, 'USER: ASSISTANT:'] * 20, 400, 'bpe',
                             True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1)  # LLaMA's
    (folder / 'tokenizer.model').write_bytes(sp)
    config = LlamaConfig(vocab_size=400, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0, tie_word_embeddings=False, dtype='float16')
    torch.manual_seed(0)
    state = {k: v.half() for k, v in LlamaForCausalLM(config).state_dict().items()}
    config.save_pretrained(folder)
    keys = sorted(state)
    shards = {'pytorch_model-00001-of-00002.bin': keys[:len(keys) // 2],
              'pytorch_model-00002-of-00002.bin': keys[len(keys) // 2:]}
    for name, part in shards.items():
        torch.save({k: state[k] for k in part}, folder / name)
    write_json(folder / 'pytorch_model.bin.index.json', {
        'metadata': {'total_size': sum(v.numel() * 2 for v in state.values())},
        'weight_map': {k: name for name, part in shards.items() for k in part}})
    write_json(folder / 'generation_config.json', {
        'bos_token_id': 1, 'eos_token_id': 2, 'pad_token_id': 0, 'do_sample': True,
        'temperature': 0.9, 'top_p': 0.6, 'max_length': 4096})
    write_json(folder / 'tokenizer_config.json', {
        'add_bos_token': True, 'add_eos_token': False, 'bos_token': '<s>', 'eos_token': '</s>',
        'unk_token': '<unk>', 'pad_token': None, 'clean_up_tokenization_spaces': False,
        'legacy': False, 'model_max_length': 4096, 'padding_side': 'right',
        'sp_model_kwargs': {}, 'tokenizer_class': 'LlamaTokenizer'})
    write_json(folder / 'special_tokens_map.json',
               {'bos_token': '<s>', 'eos_token': '</s>', 'unk_token': '<unk>'})
    return str(folder), state, sp


QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
              r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


@pytest.fixture(scope='module')
def qwen2(tmp_path_factory):
    """Qwen/Qwen2.5-3B's layout: config.json (bfloat16), bf16 ``model-0000k-of-0000n.
    safetensors`` shards with ``model.safetensors.index.json``, tokenizer.json (NFC,
    Qwen's split regex, byte-level BPE), vocab.json, merges.txt, and a tokenizer_config.json
    naming Qwen2Tokenizer with no BOS token."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    folder = tmp_path_factory.mktemp('Qwen2.5-3B')
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior='isolated'),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=400, special_tokens=['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token='<|endoftext|>',
                            pad_token='<|endoftext|>',
                            additional_special_tokens=['<|im_start|>', '<|im_end|>']
                            ).save_pretrained(folder)
    bpe.model.save(str(folder))  # vocab.json, merges.txt
    tok_cfg = json.loads((folder / 'tokenizer_config.json').read_text())
    tok_cfg.update(tokenizer_class='Qwen2Tokenizer', bos_token=None, model_max_length=32768)
    write_json(folder / 'tokenizer_config.json', tok_cfg)
    config = Qwen2Config(vocab_size=400, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=512, eos_token_id=0, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder, max_shard_size='20KB')
    return str(folder), bpe


@pytest.fixture(scope='module')
def siglip(tmp_path_factory):
    """A SigLIP folder as transformers saves one (google/siglip-*'s layout): config.json,
    model.safetensors, preprocessor_config.json, and a SiglipTokenizer's spiece.model,
    tokenizer_config.json and special_tokens_map.json (no tokenizer.json)."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer
    folder = tmp_path_factory.mktemp('siglip')
    sp = tmp_path_factory.mktemp('spiece') / 'spiece.model'
    sp.write_bytes(train_sentencepiece(CORPUS, 100, 'unigram', False,  # T5-style, as SigLIP's
                                       pad_id=0, eos_id=1, unk_id=2, bos_id=-1))
    tokenizer = SiglipTokenizer(vocab_file=str(sp), model_max_length=16)
    config = SiglipConfig(
        text_config=dict(vocab_size=100, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                         pad_token_id=0, eos_token_id=1),
        vision_config=dict(image_size=64, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2))
    torch.manual_seed(0)
    SiglipModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    SiglipImageProcessor(size={'height': 64, 'width': 64}).save_pretrained(folder)
    return str(folder)


def continuous_vision(siglip):
    return dict(type='ContinuousFeatures',
                encoder=dict(type='SemanticEncoder', pretrained=siglip, feature_layer=-2))


# ------------------------------------------------------------------------ Vicuna / LLaMA
def test_vicuna_folder_with_only_a_sentencepiece_tokenizer(vicuna, siglip, tmp_path):
    """The LLaVA recipe on Vicuna's layout: the sentencepiece model becomes a fast LLaMA
    tokenizer that encodes as sentencepiece does, answer-only labels are exact, the fp16
    shards load as fp32, generation stays greedy despite Vicuna's sampling
    generation_config, and the export reloads to the same model."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    from unimm.models.mllm.llm import load_text_tokenizer
    from unimm.models.mllm.understanding import UnderstandingMLLM
    folder, state, proto = vicuna
    assert 'tokenizer.json' not in os.listdir(folder)
    tok = load_text_tokenizer(folder, 'test')
    assert isinstance(tok, LlamaTokenizer) and tok.is_fast
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 0)  # pad = unk
    sp = spm.SentencePieceProcessor(model_proto=proto)
    for text in ('a red circle left of a blue square', 'what colour is it? Ω 42'):
        assert tok(text, add_special_tokens=False)['input_ids'] == sp.encode(text)
        assert tok(text)['input_ids'] == [1] + sp.encode(text)
    ids, labels = tokenize_conversation(tok, get_template('vicuna_v1'), CONVERSATION, 4)
    assert ids[0] == 1 and ids.count(-200) == 4
    answer = [lab for lab in labels if lab != IGNORE_INDEX]
    assert tok.decode(answer) == 'the circle is red</s>' and answer[-1] == 2

    model = MODELS.build(dict(type='UnderstandingMLLM', vision=continuous_vision(siglip),
                              llm=folder, template='vicuna_v1'))
    llm_state = model.llm.state_dict()
    assert all(llm_state[k].dtype == torch.float32 and torch.equal(llm_state[k], v.float())
               for k, v in state.items())
    n = model.image_input_tokens
    ids, labels = tokenize_conversation(model.text_tokenizer, model.template, CONVERSATION, n)
    batch = {'input_ids': torch.tensor([ids]), 'labels': torch.tensor([labels]),
             'attention_mask': torch.ones(1, len(ids), dtype=torch.long), 'images': images(1)}
    loss = model(batch)['loss']
    assert torch.isfinite(loss) and loss > 0
    answers = []
    for seed in (0, 1):  # greedy: Vicuna's do_sample / temperature / top_p are not used
        torch.manual_seed(seed)
        answers.append(model.generate([QUESTION], images(1), max_new_tokens=8))
    assert answers[0] == answers[1]

    model.save_pretrained(tmp_path / 'export')
    # the layout earlier exports have; any unimm folder loads through the one scheme
    assert sorted(os.listdir(tmp_path / 'export')) == ['config.json', 'llm',
                                                       'projector.safetensors', 'vision']
    again = PretrainedMixin.from_pretrained(str(tmp_path / 'export'), map_location='cpu')
    assert isinstance(again, UnderstandingMLLM)
    assert again.conversation_ids(QUESTION) == model.conversation_ids(QUESTION)
    torch.testing.assert_close(again(batch)['loss'], loss)
    assert again.generate([QUESTION], images(1), max_new_tokens=8) == answers[0]


# ------------------------------------------------------------------------ Qwen2
def test_qwen2_folder_with_tokenizer_json_in_bf16_safetensors_shards(qwen2, tmp_path):
    """The text-to-image recipe on Qwen2.5's layout: every bf16 shard tensor loads into the
    fp32 LLM unchanged, Qwen2Tokenizer encodes as tokenizer.json does (no BOS), ChatML
    answer labels are exact, sampling runs and the export reloads to the same model."""
    from safetensors.torch import load_file
    from transformers import Qwen2Tokenizer

    from unimm.models.mllm.generation import GenerationMLLM
    folder, bpe = qwen2
    files = sorted(os.listdir(folder))
    shards = [f for f in files if f.startswith('model-') and f.endswith('.safetensors')]
    assert len(shards) >= 2 and 'model.safetensors.index.json' in files
    assert 'model.safetensors' not in files and 'tokenizer.json' in files
    assert json.loads(open(os.path.join(folder, 'config.json')).read())['dtype'] == 'bfloat16'
    saved = {}
    for shard in shards:
        saved.update(load_file(os.path.join(folder, shard)))
    assert {v.dtype for v in saved.values()} == {torch.bfloat16}

    model = MODELS.build(dict(type='GenerationMLLM', llm=folder, num_semantic=8, sub_codes=2,
                              num_image_tokens=4))
    llm_state = model.llm.state_dict()
    text_vocab = model.text_vocab
    assert text_vocab == 400
    for key, value in saved.items():  # embedding rows past text_vocab are the visual tokens
        loaded = llm_state[key][:text_vocab] if 'embed_tokens' in key else llm_state[key]
        assert loaded.dtype == torch.float32 and torch.equal(loaded, value.float()), key
    tok = model.tokenizer
    assert isinstance(tok, Qwen2Tokenizer) and tok.is_fast and tok.bos_token_id is None
    caption = 'a red circle left of a blue square'
    assert model.caption_prompt_ids([caption]) == \
        [bpe.encode(caption, add_special_tokens=False).ids + [model.boi_id]]
    ids, labels = tokenize_conversation(tok, get_template('chatml'), CONVERSATION, 4)
    assert tok.decode([lab for lab in labels if lab != IGNORE_INDEX]) == \
        'the circle is red<|im_end|>'

    model.uncond_prob = 0.0
    batch = {'text': [caption, 'two green triangles'],
             'visual_ids': torch.tensor([[0, 5, 9, 15], [3, 3, 7, 1]])}
    loss = model(batch)['loss']
    assert torch.isfinite(loss) and loss > 0
    drawn = model.generate_ids([caption], cfg_scale=2.0, seed=3)
    assert drawn.shape == (1, 4) and 0 <= drawn.min() and drawn.max() < 16
    assert torch.equal(model.generate_ids([caption], cfg_scale=2.0, seed=3), drawn)

    model.save_pretrained(tmp_path / 'export')
    again = GenerationMLLM.from_pretrained(str(tmp_path / 'export'))
    again.uncond_prob = 0.0
    torch.testing.assert_close(again(batch)['loss'], loss)
    assert torch.equal(again.generate_ids([caption], cfg_scale=2.0, seed=3), drawn)


# ------------------------------------------------------------------------ SigLIP
def test_siglip_folder_as_transformers_saves_it(siglip):
    """The teacher class loads the folder with its sentencepiece SiglipTokenizer;
    SemanticEncoder gives the vision tower's own features; SemHiTok takes the folder as its
    semantic encoder (and, by default, its frozen teacher) and tokenises images."""
    from transformers import SiglipTokenizer, SiglipVisionModel

    from unimm.models.encoders.semantic import SemanticEncoder
    from unimm.models.encoders.siglip_teacher import SiglipTeacher
    assert {'spiece.model', 'preprocessor_config.json', 'model.safetensors'} <= \
        set(os.listdir(siglip)) and 'tokenizer.json' not in os.listdir(siglip)
    teacher = SiglipTeacher.from_pretrained(siglip).eval()
    assert isinstance(teacher.tokenizer, SiglipTokenizer)
    assert teacher.tokenize(['A Red Circle']).tolist() == \
        teacher.tokenize(['a red circle']).tolist()  # SigLIP's lower-casing
    with torch.no_grad():
        texts = teacher.embed_texts(['a red circle', 'a blue square'])
        out = teacher({'text': ['a red circle', 'a blue square'], 'image': images(2)})
    assert texts.shape == (2, 32) and torch.isfinite(out['loss'])

    encoder = SemanticEncoder(pretrained=siglip)
    reference = SiglipVisionModel.from_pretrained(siglip).eval()
    x = images(2)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), reference(pixel_values=x).last_hidden_state)
    assert encoder.grid_size == (8, 8) and encoder.out_dim == 32

    torch.manual_seed(0)
    tokenizer = MODELS.build(dict(
        type='SemHiTok', stage='spc',
        semantic_encoder=dict(type='SemanticEncoder', pretrained=siglip),
        semantic_quantizer=dict(type='SemanticPriorityCodebook', num_codes=16, dim=8,
                                kmeans_iters=2),
        semantic_decoder=dict(type='SemanticDecoder', in_dim=8, width=32, depth=1,
                              num_heads=2, out_dim=32, num_tokens=64)))
    losses = tokenizer({'image': images(4)})
    assert all(torch.isfinite(v) for k, v in losses.items() if k.startswith('loss'))
    tokenizer.eval()
    ids = tokenizer.encode(images(3, seed=1))
    assert ids.shape == (3, 64) and 0 <= ids.min() and ids.max() < 16


def test_bf16_sharded_siglip_loads_as_fp32(siglip, tmp_path):
    """A SigLIP re-saved in bf16 safetensors shards with an index (as large checkpoints
    are) gives SemanticEncoder and the teacher class the bf16 values in fp32."""
    from safetensors.torch import load_file
    from transformers import SiglipModel

    from unimm.models.encoders.semantic import SemanticEncoder
    from unimm.models.encoders.siglip_teacher import SiglipTeacher
    SiglipModel.from_pretrained(siglip, dtype=torch.bfloat16).save_pretrained(
        tmp_path, max_shard_size='20KB')
    files = os.listdir(tmp_path)
    shards = [f for f in files if f.startswith('model-')]
    assert len(shards) >= 2 and 'model.safetensors.index.json' in files
    saved = {}
    for shard in shards:
        saved.update(load_file(tmp_path / shard))
    encoder = SemanticEncoder(pretrained=str(tmp_path))
    vision = {k[len('vision_model.'):]: v for k, v in saved.items()
              if k.startswith('vision_model.') and not k.startswith('vision_model.head.')}
    state = encoder.model.state_dict()  # the tower without its pooling head
    assert set(vision) == set(state)
    for key, value in vision.items():
        assert state[key].dtype == torch.float32 and torch.equal(state[key], value.float()), key
    shutil.copy(os.path.join(siglip, 'spiece.model'), tmp_path)
    shutil.copy(os.path.join(siglip, 'tokenizer_config.json'), tmp_path)
    teacher = SiglipTeacher.from_pretrained(str(tmp_path)).model.state_dict()
    for key, value in saved.items():
        assert teacher[key].dtype == torch.float32 and torch.equal(teacher[key], value.float())
