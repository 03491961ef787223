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
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.chat import chat  # noqa: E402


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


def main(argv=None):
    args = vars(parse_args(argv))
    return chat(args.pop('config'), args.pop('checkpoint'), args.pop('image'),
                args.pop('question'), **args)


if __name__ == '__main__':
    main()
