"""Chat with an exported model about images, answers streamed; a unified model also draws:

python tools/chat.py CONFIG CHECKPOINT [--image x.png] [--question "what is it?" ...]

Without --question it is interactive (an empty line or Ctrl-D quits); --question may be
repeated for a scripted conversation. The conversation keeps its history; --image goes
into the first turn. With a model that can draw (UnifiedMLLM), a message starting with
"draw" (--draw-prefix) asks for a new image instead of an answer: the caption after the
prefix is sampled with classifier-free guidance (<boi>, h*w visual tokens, <eoi>),
decoded, saved under --out, and its path is printed. The image joins the conversation as
the assistant's reply, so later questions can be about it."""
import argparse
import os
import re
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import TextIteratorStreamer  # noqa: E402

from unimm.datasets.llava import image_input  # noqa: E402
from unimm.evaluation.recon import to_uint8  # noqa: E402
from unimm.models.mllm.conversation import IMAGE_TOKEN  # noqa: E402
from unimm.models.mllm.llm import load_exported  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint', help='the export folder, e.g. work_dirs/NAME/export')
    p.add_argument('--image', help='an image for the first turn')
    p.add_argument('--question', action='append',
                   help='a message (repeatable); without it the chat is interactive')
    p.add_argument('--max-new-tokens', type=int, default=256)
    p.add_argument('--temperature', type=float, default=0.0, help='0: greedy (text answers)')
    p.add_argument('--draw-prefix', default='draw',
                   help='messages starting with it ask a unified model for an image')
    p.add_argument('--out', default='outputs/chat', help='where drawn images are saved')
    p.add_argument('--cfg-scale', type=float, default=4.0)
    p.add_argument('--image-temperature', type=float, default=1.0)
    p.add_argument('--top-k', type=int, default=0)
    p.add_argument('--top-p', type=float, default=1.0)
    p.add_argument('--seed', type=int, default=0, help='of the first drawing (+1 per drawing)')
    return p.parse_args(argv)


def load_image(path, size):
    """A file as the model's [-1, 1] square (LLaVA-1.5's pad-to-square)."""
    with Image.open(path) as img:
        return image_input(img, size)


class Chat:
    """A conversation with ``model``: its turns and, in the order of their ``<image>``
    tags, its images (the user's and the drawn ones)."""

    def __init__(self, model, args, image=None):
        self.model, self.args = model, args
        self.turns, self.images = [], []
        self.pending_image = image  # goes into the first human turn
        self.drawings = 0
        self.last_reply_ids = None  # LLM ids of the last drawing: <boi> ... <eoi>

    def can_draw(self):
        return hasattr(self.model, 'generate_images')

    def draw_caption(self, message):
        """The caption of a draw request ('draw a red circle' -> 'a red circle'), or None."""
        prefix = self.args.draw_prefix.lower()
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
        args, model = self.args, self.model
        sampling = dict(do_sample=True, temperature=args.temperature) \
            if args.temperature > 0 else {}
        images = torch.stack(self.images) if self.images else None
        result = {}

        def run(streamer=None):
            result['text'] = model.generate([self.turns], images, streamer=streamer,
                                            max_new_tokens=args.max_new_tokens, **sampling)[0]
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
        args, model = self.args, self.model
        ids = model.generate_ids([caption], cfg_scale=args.cfg_scale,
                                 temperature=args.image_temperature, top_k=args.top_k,
                                 top_p=args.top_p, seed=args.seed + self.drawings)
        self.last_reply_ids = model.image_reply_ids(ids)[0]
        image = model.decode_images(ids)
        os.makedirs(args.out, exist_ok=True)
        slug = re.sub(r'[^a-z0-9]+', '_', caption.lower()).strip('_')[:60] or 'unconditional'
        path = os.path.join(args.out, f'{self.drawings:02d}_{slug}.png')
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


def main(argv=None):
    args = parse_args(argv)
    model = load_exported(args.config, args.checkpoint)
    model.to('cuda' if torch.cuda.is_available() else 'cpu').eval()
    chat = Chat(model, args, load_image(args.image, model.image_size) if args.image else None)
    messages = args.question or iter(lambda: input('USER: '), '')
    try:
        for message in messages:
            if not args.question:
                print('ASSISTANT: ', end='', flush=True)
            chat.send(message)
    except EOFError:
        pass


if __name__ == '__main__':
    main()
