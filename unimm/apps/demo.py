"""The web demo of an exported MLLM, a local Gradio page as LLaVA and Janus ship one
(``python tools/app.py CONFIG EXPORT``).

A model gets the tabs of what it can do: **Chat** (`UnderstandingMLLM`, `UnifiedMLLM`):
questions about an uploaded image, answers streamed as they are decoded; **Text to
image** (`GenerationMLLM`, `UnifiedMLLM`): classifier-free-guided sampling with the CFG
scale and schedule, temperature, top-k / top-p, seed and number of images, a progress bar
while the tokens are drawn. `chat_turn` and `draw_images` hold the logic (testable
without a browser); `build_demo` lays out the page; `serve` loads an export and serves it
on 127.0.0.1 unless another host is asked for."""
import os

import torch
from PIL import Image

from unimm.datasets.llava import image_input
from unimm.evaluation.recon import to_uint8
from unimm.inference.sampler import SCHEDULES
from unimm.models.mllm.conversation import IMAGE_TOKEN
from unimm.models.mllm.generation import VisualVocabularyMixin
from unimm.models.mllm.llm import load_exported
from unimm.models.mllm.understanding import ConversationMixin

try:
    import gradio as gr
except ImportError as error:  # an extra, not a core requirement
    raise ImportError("the web demo needs gradio: pip install -e '.[app]'") from error

HOST, PORT = '127.0.0.1', 7860  # local only unless --host / --share say otherwise
MAX_IMAGES = 8
# small images (a tiny model's 32 px, the 64 px shapes demo) are shown enlarged: crisp pixels
CSS = '#gallery img, #chat-image img {image-rendering: pixelated}'


def abilities(model):
    """(chat, draw): whether ``model`` answers questions about images, and whether it
    draws them (a visual vocabulary and an image tokenizer that decodes its ids)."""
    chat = isinstance(model, ConversationMixin)
    draw = isinstance(model, VisualVocabularyMixin) and model.image_tokenizer is not None
    return chat, draw


def chat_turn(model, image, question, turns, history, max_new_tokens=128, temperature=0.0):
    """Answer ``question`` after the conversation ``turns`` ({'from', 'value'} dicts; an
    ``image`` given to the first question goes into it as ``<image>``). Yields the page's
    chat ``history`` (role / content messages) with the answer as it grows, then the
    finished (history, turns); temperature 0 is greedy, i.e. `generate`'s answer."""
    question = (question or '').replace(IMAGE_TOKEN, '').strip()
    if not question:
        yield history, turns
        return
    turns = list(turns)
    value = question if turns or image is None else f'{IMAGE_TOKEN}\n{question}'
    turns.append({'from': 'human', 'value': value})
    with_image = IMAGE_TOKEN in turns[0]['value']
    images = image_input(image, model.image_size)[None] if with_image else None
    sampling = dict(do_sample=True, temperature=temperature) if temperature > 0 else {}
    history = list(history) + [{'role': 'user', 'content': question},
                               {'role': 'assistant', 'content': ''}]
    answer = ''
    for answer in model.stream_answer(turns, images, max_new_tokens=int(max_new_tokens),
                                      **sampling):
        history[-1] = {'role': 'assistant', 'content': answer}
        yield history, turns
    yield history, turns + [{'from': 'gpt', 'value': answer}]


def draw_images(model, prompt, n=4, cfg_scale=4.0, cfg_schedule='constant', temperature=1.0,
                top_k=0, top_p=1.0, seed=0, progress=None):
    """``n`` images (PIL) sampled for ``prompt`` ('' draws unconditionally) in one batch
    with seed ``seed``: the images `generate_images` gives for ``[prompt] * n``.
    ``progress(done, total)`` follows the token positions drawn."""
    ids = model.generate_ids([prompt or ''] * int(n), cfg_scale=float(cfg_scale),
                             cfg_schedule=cfg_schedule, temperature=float(temperature),
                             top_k=int(top_k), top_p=float(top_p), seed=int(seed),
                             progress=progress)
    return [Image.fromarray(a) for a in to_uint8(model.decode_images(ids)).numpy()]


def describe(model, name=''):
    """A line on the page saying what is served."""
    chat, draw = abilities(model)
    what = ' and '.join(w for w, can in (('answers questions about images', chat),
                                         ('draws images from text', draw)) if can)
    size = model.image_size if chat else None
    parts = [f'**{type(model).__name__}**' + (f' from `{name}`' if name else ''), what]
    if size:
        parts.append(f'images enter at {size}x{size} px')
    if draw:
        parts.append(f'an image is {model.num_image_tokens} tokens of '
                     f'{model.num_visual} visual ids')
    return '; '.join(parts) + '.'


def build_demo(model, name=''):
    """The page (a ``gr.Blocks``) for ``model``, an eval-mode MLLM on its device: the
    tabs of what it can do; requests run one at a time (one model, one sampler)."""
    chat, draw = abilities(model)
    if not (chat or draw):
        raise ValueError(f'{type(model).__name__} neither answers about images nor draws '
                         '(a GenerationMLLM needs its image_tokenizer to decode images)')
    with gr.Blocks(title='unimm demo', analytics_enabled=False) as demo:
        gr.Markdown(f'## unimm demo\n{describe(model, name)}')
        with gr.Tabs():
            if chat:
                _chat_tab(model)
            if draw:
                _draw_tab(model)
    return demo


def _chat_tab(model):
    with gr.Tab('Chat', id='chat'):
        turns = gr.State([])
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(type='pil', image_mode='RGB', label='Image',
                                 sources=['upload', 'clipboard'], elem_id='chat-image')
                max_new_tokens = gr.Slider(1, 1024, value=128, step=1, label='Max new tokens',
                                           elem_id='max-new-tokens')
                temperature = gr.Slider(0, 2, value=0, step=0.05,
                                        label='Temperature (0: greedy)')
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label='Conversation', height=360, render_markdown=False,
                                     elem_id='chatbot')
                question = gr.Textbox(label='Question', placeholder='Ask about the image',
                                      elem_id='question')
                with gr.Row():
                    send = gr.Button('Send', variant='primary', elem_id='send')
                    clear = gr.Button('Clear', elem_id='clear')

    def respond(image, question, turns, history, max_new_tokens, temperature):
        for shown, kept in chat_turn(model, image, question, turns, history, max_new_tokens,
                                     temperature):
            yield shown, kept, ''

    gr.on([send.click, question.submit], respond,
          [image, question, turns, chatbot, max_new_tokens, temperature],
          [chatbot, turns, question], concurrency_id='model', concurrency_limit=1)
    # a new image starts a new conversation
    for event in (clear.click, image.change):
        event(lambda: ([], []), None, [chatbot, turns], queue=False)


def _draw_tab(model):
    with gr.Tab('Text to image', id='draw'):
        with gr.Row():
            with gr.Column(scale=2):
                prompt = gr.Textbox(label='Prompt', placeholder='a large red circle',
                                    elem_id='prompt')
                n = gr.Slider(1, MAX_IMAGES, value=4, step=1, label='Number of images',
                              elem_id='num-images')
                cfg_scale = gr.Slider(1, 10, value=4, step=0.5, label='CFG scale (1: off)',
                                      elem_id='cfg-scale')
                cfg_schedule = gr.Dropdown(list(SCHEDULES), value='constant',
                                           label='CFG schedule')
                temperature = gr.Slider(0, 2, value=1, step=0.05,
                                        label='Temperature (0: greedy)', elem_id='temperature')
                with gr.Row():
                    top_k = gr.Number(0, precision=0, minimum=0, maximum=model.num_visual,
                                      label='Top-k (0: off)', elem_id='top-k')
                    top_p = gr.Slider(0.05, 1, value=1, step=0.05, label='Top-p (1: off)',
                                      elem_id='top-p')
                seed = gr.Number(0, precision=0, minimum=0, label='Seed', elem_id='seed')
                generate = gr.Button('Generate', variant='primary', elem_id='generate')
            with gr.Column(scale=3):
                gallery = gr.Gallery(label='Images', columns=4, format='png',
                                     object_fit='contain', height=420, elem_id='gallery')

    def run(prompt, n, cfg_scale, cfg_schedule, temperature, top_k, top_p, seed,
            progress=gr.Progress()):
        def report(done, total):
            progress((done, total), desc='sampling image tokens', unit='tokens')
        return draw_images(model, prompt, n, cfg_scale, cfg_schedule, temperature, top_k,
                           top_p, seed, progress=report)

    gr.on([generate.click, prompt.submit], run,
          [prompt, n, cfg_scale, cfg_schedule, temperature, top_k, top_p, seed], gallery,
          concurrency_id='model', concurrency_limit=1)


def serve(config, checkpoint, host=HOST, port=PORT, share=False, device=None):
    """Load the export ``checkpoint`` (``config`` names its type when its config.json does
    not), put it on ``device`` (default: CUDA if present, there in bfloat16) and serve its
    page at http://host:port until interrupted; ``share`` asks Gradio for a public link."""
    model = load_exported(config, checkpoint)
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    model.to(device).eval()
    if device.type == 'cuda':
        model.to(torch.bfloat16)
    demo = build_demo(model, name=os.path.normpath(checkpoint))
    demo.queue().launch(server_name=host, server_port=port, share=share, show_error=True,
                        css=CSS)
