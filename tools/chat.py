"""Chat with an exported understanding model about an image, answers streamed:

python tools/chat.py CONFIG CHECKPOINT --image x.png [--question "what is it?"]

Without --question it is interactive (an empty line or Ctrl-D quits); the conversation
keeps its history, and the image stays in the first turn."""
import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import TextIteratorStreamer  # noqa: E402

from unimm.datasets.llava import pad_to_square  # noqa: E402
from unimm.datasets.transforms import pil_to_tensor, to_rgb  # noqa: E402
from unimm.evaluation.lmms_model import load_exported  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('config')
    p.add_argument('checkpoint', help='the export folder, e.g. work_dirs/NAME/export')
    p.add_argument('--image', required=True)
    p.add_argument('--question', help='ask once and exit (default: interactive)')
    p.add_argument('--max-new-tokens', type=int, default=256)
    p.add_argument('--temperature', type=float, default=0.0, help='0: greedy')
    return p.parse_args(argv)


def answer(model, conversation, image, args):
    """Stream one answer to stdout and return it."""
    streamer = TextIteratorStreamer(model.text_tokenizer, skip_prompt=True,
                                    skip_special_tokens=True)
    sampling = dict(do_sample=True, temperature=args.temperature) if args.temperature > 0 else {}
    result = {}
    worker = threading.Thread(target=lambda: result.update(text=model.generate(
        [conversation], image, max_new_tokens=args.max_new_tokens, streamer=streamer,
        **sampling)[0]))
    worker.start()
    for piece in streamer:
        print(piece, end='', flush=True)
    worker.join()
    print(flush=True)
    return result['text']


def main(argv=None):
    args = parse_args(argv)
    model = load_exported(args.config, args.checkpoint)
    model.to('cuda' if torch.cuda.is_available() else 'cpu').eval()
    size = model.vision.image_size
    img = pad_to_square(to_rgb(Image.open(args.image)), (127, 127, 127))
    image = pil_to_tensor(img.resize((size, size), Image.BICUBIC))[None]
    conversation = []
    questions = [args.question] if args.question else iter(lambda: input('USER: '), '')
    try:
        for question in questions:
            conversation += model.single_turn(question, with_image=not conversation)
            if not args.question:
                print('ASSISTANT: ', end='', flush=True)
            reply = answer(model, conversation, image, args)
            conversation.append({'from': 'gpt', 'value': reply})
    except EOFError:
        pass


if __name__ == '__main__':
    main()
