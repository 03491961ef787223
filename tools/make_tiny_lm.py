"""Write a tiny randomly initialised causal LM + BPE tokenizer trained on the shapes
world's text, as a normal HF folder: the demo's stand-in for Vicuna / Qwen2.5.

python tools/make_tiny_lm.py --arch llama --out work_dirs/tiny_llama"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from unimm.apis.tiny_lm import ARCHS, make_tiny_lm  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--arch', default='llama', choices=sorted(ARCHS))
    p.add_argument('--out', required=True)
    p.add_argument('--vocab-size', type=int, default=1024)
    p.add_argument('--hidden-size', type=int, default=128)
    p.add_argument('--layers', type=int, default=4)
    p.add_argument('--heads', type=int, default=4)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--extra-text', action='append', default=[],
                   help='text the tokenizer should also learn (e.g. a chat template\'s system '
                   'prompt); repeatable')
    args = p.parse_args(argv)
    make_tiny_lm(args.out, arch=args.arch, vocab_size=args.vocab_size,
                 hidden_size=args.hidden_size, num_hidden_layers=args.layers,
                 num_attention_heads=args.heads, seed=args.seed, extra_texts=args.extra_text)
    print(f'wrote a tiny {args.arch} to {args.out}')


if __name__ == '__main__':
    main()
