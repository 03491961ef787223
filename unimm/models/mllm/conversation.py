"""Chat templates and their tokenisation with answer-only labels.

A conversation is LLaVA's list of turns ``[{'from': 'human'|'gpt', 'value': text}]``;
``<image>`` in a human turn marks where the image's features go. A template renders it
to text and marks the character ranges that are training targets (the assistant's
answers and their end marker); the whole text is tokenised at once (so tokens are the
same as at inference) and a token is a target when its characters overlap a target
range. Templates are pluggable: ``register_template(Template(...))``.
"""
from dataclasses import dataclass

IMAGE_TOKEN = '<image>'
IMAGE_TOKEN_INDEX = -200  # LLaVA's placeholder id; never a real vocabulary id
IGNORE_INDEX = -100       # label of a position that carries no loss (torch's CE default)


@dataclass(frozen=True)
class Template:
    """How turns become text. ``{message}``, ``{system}`` and ``{eos}`` (the tokenizer's
    end-of-sequence token) are filled in; ``answer_end`` closes every answer and is part
    of its target (it is also where generation stops)."""
    name: str
    system: str = ''
    system_format: str = '{system}'
    user_format: str = '{message}'
    assistant_prefix: str = ''
    answer_format: str = '{message}'
    answer_end: str = '{eos}'
    after_answer: str = ''
    image_only_prompt: bool = False  # LLaVA 'plain' (pretraining): the user turn is just the image
    add_bos: bool = True

    def render(self, conversation, eos_token):
        """Text, target character ranges, and whether it ends with an open assistant
        turn (a trailing human turn: the prompt for generation)."""
        text = self.system_format.format(system=self.system)
        targets = []
        for i, turn in enumerate(conversation):
            role, value = turn['from'], turn['value']
            expected = 'human' if i % 2 == 0 else 'gpt'
            if role != expected:
                raise ValueError(f'conversation turn {i} is from {role!r}; turns must alternate '
                                 "'human', 'gpt', ... starting with 'human'")
            if role == 'human':
                if self.image_only_prompt:
                    value = IMAGE_TOKEN if IMAGE_TOKEN in value else ''
                text += self.user_format.format(message=value) + self.assistant_prefix
            else:
                start = len(text)
                text += self.answer_format.format(message=value) + \
                    self.answer_end.format(eos=eos_token)
                targets.append((start, len(text)))
                text += self.after_answer
        return text, targets

    def stop_text(self, eos_token):
        """The text that ends an answer (generation stops at it)."""
        return self.answer_end.format(eos=eos_token)


VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's "
                 "questions.")
TEMPLATES = {}


def register_template(template):
    """Make ``template`` available by its name (in configs: ``template='name'``)."""
    TEMPLATES[template.name] = template
    return template


def get_template(name):
    if name not in TEMPLATES:
        raise ValueError(f'unknown conversation template {name!r}; registered: '
                         f'{sorted(TEMPLATES)} (add one with unimm.models.mllm.conversation.'
                         'register_template)')
    return TEMPLATES[name]


# LLaVA-1.5 / Vicuna v1: "SYSTEM USER: q ASSISTANT: a</s>USER: ..."
register_template(Template('vicuna_v1', system=VICUNA_SYSTEM, system_format='{system} ',
                           user_format='USER: {message} ', assistant_prefix='ASSISTANT:',
                           answer_format=' {message}', answer_end='{eos}'))
# LLaVA's pretraining template: image, then the caption as the target
register_template(Template('plain', image_only_prompt=True, answer_end='\n'))
# ChatML (Qwen2 / Qwen2.5 instruct)
register_template(Template(
    'chatml', system='You are a helpful assistant.',
    system_format='<|im_start|>system\n{system}<|im_end|>\n',
    user_format='<|im_start|>user\n{message}<|im_end|>\n',
    assistant_prefix='<|im_start|>assistant\n', answer_end='<|im_end|>', after_answer='\n',
    add_bos=False))


def tokenize_conversation(tokenizer, template, conversation, num_image_tokens):
    """input_ids and labels (lists of ints) for one conversation.

    Each ``<image>`` becomes ``num_image_tokens`` ``IMAGE_TOKEN_INDEX`` placeholders (the
    model writes the image's features there); labels are ``IGNORE_INDEX`` everywhere
    but on answer tokens."""
    if not getattr(tokenizer, 'is_fast', False):
        raise ValueError(f'{type(tokenizer).__name__} is not a fast tokenizer; answer-only '
                         'labels need its offset mapping (load it with use_fast=True)')
    text, targets = template.render(conversation, tokenizer.eos_token)
    input_ids, labels = [], []
    if template.add_bos and tokenizer.bos_token_id is not None:
        input_ids.append(tokenizer.bos_token_id)
        labels.append(IGNORE_INDEX)
    offset = 0
    for k, chunk in enumerate(text.split(IMAGE_TOKEN)):
        if k:
            input_ids += [IMAGE_TOKEN_INDEX] * num_image_tokens
            labels += [IGNORE_INDEX] * num_image_tokens
            offset += len(IMAGE_TOKEN)
        if chunk:
            enc = tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True)
            for tok, (a, b) in zip(enc['input_ids'], enc['offset_mapping']):
                a, b = a + offset, b + offset
                is_target = any(a < end and b > start for start, end in targets)
                input_ids.append(tok)
                labels.append(tok if is_target else IGNORE_INDEX)
        offset += len(chunk)
    return input_ids, labels
