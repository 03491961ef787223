"""Serve the web demo of an exported model on a local page:

python tools/app.py CONFIG CHECKPOINT [--host 127.0.0.1] [--port 7860] [--share]

CHECKPOINT is an exported UnderstandingMLLM, GenerationMLLM or UnifiedMLLM folder
(<work_dir>/export); the page has a chat tab (questions about an uploaded image, streamed
answers) and / or a text-to-image tab, as the model can. It listens on 127.0.0.1 only
unless --host names another address (0.0.0.0: every interface) or --share asks Gradio
for a public link. Needs the app extra: pip install -e '.[app]'."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    from unimm.apps.demo import HOST, PORT
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('checkpoint', help='an exported model folder, e.g. work_dirs/NAME/export')
    p.add_argument('--host', default=HOST, help='the address to listen on (default: %(default)s)')
    p.add_argument('--port', type=int, default=PORT)
    p.add_argument('--share', action='store_true', help="a public link through Gradio's servers")
    p.add_argument('--device', help='default: cuda if available, else cpu')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from unimm.apps.demo import serve
    serve(args.config, args.checkpoint, host=args.host, port=args.port, share=args.share,
          device=args.device)


if __name__ == '__main__':
    main()
