"""Print a markdown table of held-out VQA results (``test_vqa.json`` written by
``tools/test.py CONFIG EXPORT --task vqa``): python tools/vqa_table.py NAME=EXPORT ..."""
import argparse
import json
import os


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('runs', nargs='+', help='NAME=EXPORT_FOLDER')
    args = p.parse_args(argv)
    rows = []
    for run in args.runs:
        name, folder = run.split('=', 1)
        with open(os.path.join(folder, 'test_vqa.json')) as f:
            rows.append((name, json.load(f)))
    types = sorted({t for _, r in rows for t in r['accuracy_by_type']})
    print('| vision features | accuracy | chance | blind baseline | ' + ' | '.join(types) + ' |')
    print('| --- ' * (4 + len(types)) + '|')
    for name, r in rows:
        by_type = ' | '.join(f"{r['accuracy_by_type'].get(t, float('nan')):.3f}" for t in types)
        print(f"| {name} | {r['accuracy']:.3f} | {r['chance']:.3f} | {r['blind_baseline']:.3f} | "
              f'{by_type} |')
    print(f"\n{rows[0][1]['num_questions']} held-out questions per run.")


if __name__ == '__main__':
    main()
