"""Chat with an exported model about images, answers streamed; a unified model also draws
(behind tools/chat.py). The conversation keeps its history; a drawn image joins it as the
assistant's reply, so later questions can be about it."""
import os
import re
import threading

import torch
import torch.nn.functional as F
from PIL import Image
from transformers import TextIteratorStreamer

from unimm.datasets.llava import image_input
from unimm.evaluation.recon import to_uint8
from unimm.models.mllm.conversation import IMAGE_TOKEN
from unimm.models.mllm.llm import load_exported


def load_image(path, size):
    """A file as the model's [-1, 1] square (LLaVA-1.5's pad-to-square)."""
    with Image.open(path) as img:
        return image_input(img, size)


class Chat:
    """A conversation with ``model``: its turns and, in the order of their ``<image>``
    tags, its images (the user's and the drawn ones). ``temperature`` 0 answers greedily;
    a message starting with ``draw_prefix`` asks a model that can draw for an image, sampled
    with ``cfg_scale``, ``image_temperature``, ``top_k``, ``top_p`` and ``seed`` (+1 per
    drawing) and saved under ``out``."""

    def __init__(self, model, image=None, max_new_tokens=256, temperature=0.0,
                 draw_prefix='draw', out='outputs/chat', cfg_scale=4.0, image_temperature=1.0,
                 top_k=0, top_p=1.0, seed=0):
        self.model = model
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.draw_prefix, self.out = draw_prefix, out
        self.cfg_scale, self.image_temperature = cfg_scale, image_temperature
        self.top_k, self.top_p, self.seed = top_k, top_p, seed
        self.turns, self.images = [], []
        self.pending_image = image  # goes into the first human turn
        self.drawings = 0
        self.last_reply_ids = None  # LLM ids of the last drawing: <boi> ... <eoi>

    def can_draw(self):
        return hasattr(self.model, 'generate_images')

    def draw_caption(self, message):
        """The caption of a draw request ('draw a red circle' -> 'a red circle'), or None."""
        prefix = self.draw_prefix.lower()
        if not self.can_draw() or not message.lower().startswith(prefix):
            return None
        rest = message[len(prefix):]
        if rest and rest[0].isalnum():  # 'drawing ...' is a question, not a request
            return None
        return rest.strip(' :,')

    def _human(self, message):
        if self.pending_image is not None:
            self.images.append(self.pending_image)
            self.pending_image = None
            message = f'{IMAGE_TOKEN}\n{message}'
        self.turns.append({'from': 'human', 'value': message})

    def send(self, message, stream=True):
        """Reply to one message: a drawn image's path, or the (streamed) text answer."""
        caption = self.draw_caption(message)
        self._human(message)
        if caption is not None:
            return self.draw(caption)
        return self.answer(stream)

    def answer(self, stream=True):
        """Answer the open human turn; streams to stdout when ``stream``."""
        model = self.model
        sampling = dict(do_sample=True, temperature=self.temperature) \
            if self.temperature > 0 else {}
        images = torch.stack(self.images) if self.images else None
        result = {}

        def run(streamer=None):
            result['text'] = model.generate([self.turns], images, streamer=streamer,
                                            max_new_tokens=self.max_new_tokens, **sampling)[0]
        if stream:
            streamer = TextIteratorStreamer(model.text_tokenizer, skip_prompt=True,
                                            skip_special_tokens=True)
            worker = threading.Thread(target=run, args=(streamer,))
            worker.start()
            for piece in streamer:
                print(piece, end='', flush=True)
            worker.join()
            print(flush=True)
        else:
            run()
        self.turns.append({'from': 'gpt', 'value': result['text']})
        return result['text']

    def draw(self, caption):
        """Sample ``caption``'s image (<boi>, h*w visual tokens, <eoi>), decode it, save
        it, add it to the conversation as the assistant's reply; returns its path."""
        model = self.model
        ids = model.generate_ids([caption], cfg_scale=self.cfg_scale,
                                 temperature=self.image_temperature, top_k=self.top_k,
                                 top_p=self.top_p, seed=self.seed + self.drawings)
        self.last_reply_ids = model.image_reply_ids(ids)[0]
        image = model.decode_images(ids)
        os.makedirs(self.out, exist_ok=True)
        slug = re.sub(r'[^a-z0-9]+', '_', caption.lower()).strip('_')[:60] or 'unconditional'
        path = os.path.join(self.out, f'{self.drawings:02d}_{slug}.png')
        Image.fromarray(to_uint8(image)[0].numpy()).save(path)
        self.drawings += 1
        size = model.image_size
        if image.shape[-1] != size:  # the understanding side's input size
            image = F.interpolate(image, size=(size, size), mode='bicubic',
                                  align_corners=False).clamp(-1, 1)
        self.images.append(image[0].to(torch.float32).cpu())
        self.turns.append({'from': 'gpt', 'value': IMAGE_TOKEN})
        print(path, flush=True)
        return path


def chat(config, checkpoint, image=None, questions=None, **settings):
    """Load the export ``checkpoint`` and hold a conversation with it: ``questions`` in
    turn, or, without them, messages read from the terminal until an empty line or Ctrl-D.
    ``image`` (a file) goes into the first turn; ``settings`` are ``Chat``'s."""
    model = load_exported(config, checkpoint)
    model.to('cuda' if torch.cuda.is_available() else 'cpu').eval()
    session = Chat(model, load_image(image, model.image_size) if image else None, **settings)
    messages = questions or iter(lambda: input('USER: '), '')
    try:
        for message in messages:
            if not questions:
                print('ASSISTANT: ', end='', flush=True)
            session.send(message)
    except EOFError:
        pass
    return session
