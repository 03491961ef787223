"""The paper's Fig. 4 on the shapes world (behind tools/code_patches.py): for each world the
stage-1 SPC export (<work_dirs>/spc_<world>/export) encodes held-out scenes, and
within-code against between-code patch distances, code purity and a figure of frequent
codes' patches go to a markdown page and a JSON file; the SGHC export
(<work_dirs>/sghc_<world>/export), where present, adds its full ids as a row. The method
is unimm/evaluation/code_patches.py."""
import json
import os

from unimm.evaluation.code_patches import report, run_world


def code_patches(worlds, scenes=512, work_dirs='work_dirs', sghc=True,
                 doc='docs/fig4_code_patches.md', images='docs/images',
                 json_path='work_dirs/code_patches/results.json', seed=0, command=''):
    """Run the study on ``worlds`` (keys of ``WORLDS``) with ``scenes`` held-out scenes each;
    figures go to ``images``/spc_code_patches_<world>.png, the page (which shows
    ``command``) to ``doc``, the numbers to ``json_path``; returns the per-world results."""
    results = []
    for world in worlds:
        spc = os.path.join(work_dirs, f'spc_{world}', 'export')
        sghc_export = os.path.join(work_dirs, f'sghc_{world}', 'export')
        if not os.path.isfile(os.path.join(spc, 'config.json')):
            raise FileNotFoundError(f'{spc} is not an export: train registry_configs/shapes/'
                                    f'spc_{world}.py first (python tools/train.py ...)')
        if not sghc or not os.path.isfile(os.path.join(sghc_export, 'config.json')):
            sghc_export = None
        os.makedirs(images, exist_ok=True)
        image = os.path.join(images, f'spc_code_patches_{world}.png')
        results.append(run_world(world, spc, sghc_export, scenes, image, seed=seed))
        print(f'{world}: ratio on pixels '
              f"{results[-1]['distances']['pixels']['semantic code']['ratio']:.3f}", flush=True)
    os.makedirs(os.path.dirname(json_path) or '.', exist_ok=True)
    with open(json_path, 'w') as f:
        json.dump(results, f, indent=1)
    with open(doc, 'w') as f:
        f.write(report(results, command, doc))
    print(f'wrote {doc} and {json_path}')
    return results
