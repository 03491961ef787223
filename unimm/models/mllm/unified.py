"""UnifiedMLLM: one HF causal LM that answers questions about images and draws them — the
"unified MLLM with SemHiTok" of the paper's abstract, as Janus, VILA-U and Show-o each
ship one model for both.

- Understanding (`ConversationMixin`, the LLaVA path of understanding.py): an ``<image>``
  in a prompt enters through the MLP projector on the tokenizer's quantised features
  (``image_input='projector'``, the paper's understanding recipe), or as the image's own
  visual tokens embedded by the LLM's extended embedding table
  (``image_input='visual_tokens'``, VILA-U / Show-o style). Answers are text: visual ids
  and ``<boi>`` / ``<eoi>`` are masked out of answer decoding and scoring (the training
  loss keeps the whole vocabulary, which teaches the LLM that answers are text).
- Generation (`VisualVocabularyMixin`, generation.py): the vocabulary is extended by the
  image tokenizer's visual tokens plus ``<boi>`` / ``<eoi>``; [bos] caption ``<boi>``
  v_1 .. v_hw ``<eoi>``; visual-head cross-entropy; caption drop for classifier-free
  guidance; the fast `CFGSampler`; decoding by the frozen tokenizer.
- Training: a `MixedTaskDataset` batch holds an understanding part (``und``) and a
  generation part (``gen``); ``forward`` returns ``loss_und`` and ``loss_gen``, each
  computed by exactly the code `UnderstandingMLLM` / `GenerationMLLM` use, which the
  runner sums (the optimised loss) and logs apart.

One export folder serves tools/chat.py (questions and ``draw ...`` requests),
tools/generate.py, the lmms-eval model and the generation evaluators."""
import os

from torch import nn

from unimm.models.base import PretrainedMixin, load_unimm_folder, sub_state
from unimm.models.mllm.conversation import get_template
from unimm.models.mllm.generation import VisualVocabularyMixin
from unimm.models.mllm.llm import enable_gradient_checkpointing, load_llm, load_text_tokenizer
from unimm.models.mllm.understanding import ConversationMixin, load_projector
from unimm.registry import MODELS

IMAGE_INPUTS = ('projector', 'visual_tokens')
LLM_HINT = ('Download the LLM (e.g. `huggingface-cli download lmsys/vicuna-7b-v1.5 --local-dir '
            'checkpoints/vicuna-7b-v1.5`); for the demo: python tools/make_tiny_lm.py --arch '
            'llama --out work_dirs/tiny_llama')


@MODELS.register_module()
class UnifiedMLLM(ConversationMixin, VisualVocabularyMixin, PretrainedMixin, nn.Module):
    """Understanding and generation in one LLM (see the module docstring).

    Args:
        llm: local HF causal-LM folder, or an architecture dict (then give ``tokenizer``).
        image_tokenizer: the frozen `ImageTokenizer` export (SemHiTok or a baseline):
            tokenises generation targets, decodes generated tokens and, by default, gives
            the understanding features.
        tokenizer: the text tokenizer's folder (default: ``llm``).
        image_input: ``'projector'`` (features -> MLP projector) or ``'visual_tokens'``
            (the image's ids through the LLM's own embeddings; no projector).
        vision: the projector's feature adapter: None uses ``image_tokenizer``'s features
            (one tokenizer instance for both paths); a registry config or folder gives
            another (e.g. ``ContinuousFeatures``: Janus-style separate encoders).
        projector: registry config without the dims; ``projector_from``: a folder with
            ``projector.safetensors`` (an understanding phase-1 export).
        template: the conversation template of the understanding data.
        visual_head, text_vocab, uncond_prob, max_caption_tokens, pack_length: as in
            `GenerationMLLM`.
    """

    FOLDER_PREFIXES = VisualVocabularyMixin.FOLDER_PREFIXES + ('vision.',)
    VISION_FOLDER = 'vision'

    def __init__(self, llm, image_tokenizer, tokenizer=None, image_input='projector',
                 vision=None, projector=dict(type='MLPProjector', kind='mlp2x_gelu'),
                 projector_from=None, template='vicuna_v1',
                 visual_head=dict(type='FlatVisualHead'), text_vocab=None, uncond_prob=0.1,
                 max_caption_tokens=120, pack_length=None, gradient_checkpointing=False,
                 attn_implementation='sdpa'):
        super().__init__()
        if image_input not in IMAGE_INPUTS:
            raise ValueError(f'UnifiedMLLM.image_input must be one of {IMAGE_INPUTS}, got '
                             f'{image_input!r}')
        if isinstance(llm, dict) and tokenizer is None:
            raise ValueError('UnifiedMLLM: an architecture dict as llm needs tokenizer=FOLDER')
        self.llm = load_llm(dict(llm) if isinstance(llm, dict) else llm, attn_implementation,
                            'UnifiedMLLM.llm', LLM_HINT)
        self.tokenizer = load_text_tokenizer(tokenizer or llm, 'UnifiedMLLM.tokenizer')
        self.template = get_template(template)
        self.image_input = image_input
        self.vision = self.projector = None
        self.shared_vision = image_input == 'projector' and vision is None
        image_module = image_tokenizer
        if image_input == 'projector':
            if self.shared_vision:  # the drawing tokenizer's own features: loaded once
                self.vision = MODELS.build(dict(type='TokenizerFeatures',
                                                tokenizer=image_tokenizer), path='vision')
                self._image_tokenizer_folder = image_tokenizer
                image_module = self.vision.tokenizer
            else:
                self.vision = load_unimm_folder(vision, 'UnifiedMLLM.vision') \
                    if isinstance(vision, str) else MODELS.build(vision, path='vision')
                self.vision.requires_grad_(False)
            self.projector = MODELS.build(dict(projector, in_dim=self.vision.out_dim,
                                               out_dim=self.llm.config.hidden_size),
                                          path='projector')
            if projector_from:
                load_projector(self.projector, projector_from, 'UnifiedMLLM.projector_from')
        elif vision is not None or projector_from:
            raise ValueError("UnifiedMLLM: image_input='visual_tokens' embeds the image's own "
                             'visual tokens; it takes no vision adapter or projector_from')
        self._init_visual_vocabulary(image_module, text_vocab, visual_head, uncond_prob,
                                     max_caption_tokens, pack_length)
        if gradient_checkpointing:
            enable_gradient_checkpointing(self.llm)

    # ------------------------------------------------------------- image input
    @property
    def text_tokenizer(self):
        return self.tokenizer

    @property
    def image_input_tokens(self):
        return self.vision.num_tokens if self.vision is not None else self.num_image_tokens

    @property
    def image_size(self):
        return self.vision.image_size if self.vision is not None else \
            self.image_tokenizer.image_size

    def image_embeddings(self, images):
        """[M, 3, H, W] -> [M, N, hidden]: projected features, or the embeddings of the
        image's visual tokens (trained with the LLM)."""
        if self.projector is not None:
            return super().image_embeddings(images)
        return self.llm.get_input_embeddings()(self.encode_images(images) + self.text_vocab)

    @property
    def answer_vocab(self):
        """Answers are decoded and scored over the text vocabulary: images are drawn by
        the sampler, never by text decoding."""
        return self.text_vocab

    # ---------------------------------------------------------------- training
    def forward(self, batch):
        """``loss_und`` / ``loss_gen`` of a mixed batch (``und``: a LLaVA batch, ``gen``: a
        text-to-image batch; either may be absent, and a plain batch of one kind is taken
        as that part). An absent part's loss is 0; ``und_samples`` / ``gen_samples`` say
        how many samples each term averaged over."""
        und = batch.get('und', batch if 'labels' in batch else None)
        gen = batch.get('gen', batch if 'text' in batch else None)
        zero = self.llm.get_input_embeddings().weight.new_zeros(())
        out = {'loss_und': zero, 'loss_gen': zero, 'answer_tokens': 0.0, 'truncated': 0.0,
               'uncond_fraction': 0.0, 'und_samples': 0, 'gen_samples': 0}
        if und is not None:
            logged = self.conversation_loss(und)
            out.update(logged, und_samples=len(und['input_ids']))
            out['loss_und'] = out.pop('loss')
        if gen is not None:
            logged = self.generation_loss(gen)
            out.update(logged, gen_samples=len(gen['text']))
            out['loss_gen'] = out.pop('loss')
        return out

    # ---------------------------------------------------------------- saving
    def export_config(self):
        cfg = super().export_config()
        for key in ('num_visual', 'num_semantic', 'sub_codes', 'num_image_tokens'):
            cfg.pop(key)  # read from image_tokenizer
        cfg.update(vision=None if self.shared_vision or self.vision is None
                   else self.VISION_FOLDER, projector_from=None, gradient_checkpointing=False)
        return cfg

    def save_parts(self, folder, state):
        """The generation export's folders (``llm/``, ``image_tokenizer/``) plus ``vision/``
        when the projector reads a vision adapter other than the image tokenizer."""
        super().save_parts(folder, state)
        if self.vision is not None and not self.shared_vision:
            self.vision.save_pretrained(os.path.join(folder, self.VISION_FOLDER),
                                        state_dict=sub_state(state, 'vision.'))

    @classmethod
    def resolve_config(cls, cfg, folder):
        super().resolve_config(cfg, folder)
        if cfg.get('vision'):
            cfg['vision'] = os.path.join(folder, cls.VISION_FOLDER)
