"""The paper's Fig. 4 observation, measured: image patches that share a semantic code look
alike in texture.

A tokenizer encodes held-out shapes-world scenes; every token's pixel patch (the image
region of its grid cell) is kept under its code. Then:

* distances: the mean distance between two patches of the SAME code (within) against
  two patches of DIFFERENT codes (between), their ratio (0: a code holds one patch
  appearance; 1: codes say nothing about the pixels), on three descriptors of a patch:
  ``pixels`` (RGB in [0, 1]), ``mean_removed`` (each channel's mean taken out, so flat
  colour alone cannot decide) and ``spectrum`` (the amplitude spectrum of the patch's
  mean-removed luminance over its mean luminance: relative contrast per spatial
  frequency, blind to where in the patch a stripe or dot falls and to the hue);
* a permutation baseline (codes shuffled over tokens, code sizes kept: ratio ~ 1) and a
  95 % bootstrap interval over scenes;
* purity of codes against per-token labels read from the renderer (the pattern family
  and the colour of the scene element covering most of the patch);
* a figure: rows of patches of a few frequent codes, and one row of random patches.

Pairs are sampled, not enumerated: a within pair is a uniformly drawn token whose code
has another token, with a uniformly drawn other token of its code; a between pair is two
uniformly drawn tokens of different codes. So each is a per-token average, and under
shuffled codes both are the mean distance of two random tokens."""
import math

import numpy as np
import torch

DESCRIPTORS = ('pixels', 'mean_removed', 'spectrum')
LABELS = ('family', 'colour')


# ------------------------------------------------------------------ patches and labels
def token_patches(images, grid):
    """``[B, 3, H, W]`` -> ``[B * h * w, 3, p, p]``: each token's pixel patch, raster order
    per image (the order of a tokenizer's ids). ``p = H // h``; pixels past ``h * p`` (an
    image size the grid does not divide) belong to no token."""
    h, w = grid
    p = images.shape[-2] // h
    if images.shape[-1] // w != p:
        raise ValueError(f'non-square patches: images {tuple(images.shape[-2:])}, grid {grid}')
    x = images[..., :h * p, :w * p].reshape(images.shape[0], 3, h, p, w, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, p, p)


def token_labels(world, indices, grid):
    """Per token of scenes ``indices`` of a ``ShapesWorld``: the scene element covering most
    of its patch (the background or a shape) gives ``family`` (its pattern family; None in
    the flat world) and ``colour`` (the shape's palette name, or 'background'); ``single``
    says whether that element covers the whole patch."""
    from unimm.datasets.shapes import region_map
    h, w = grid
    p = world.resolution // h
    out = {'family': [], 'colour': [], 'single': []}
    for i in indices:
        scene, background = world.scene(i), world.background(i)
        regions = region_map(scene, world.resolution)[:h * p, :w * p]
        cells = regions.reshape(h, p, w, p).transpose(0, 2, 1, 3).reshape(h * w, p * p) + 1
        counts = np.stack([(cells == r).sum(1) for r in range(len(scene) + 1)], axis=1)
        major = counts.argmax(1) - 1
        out['single'].append(counts.max(1) == p * p)
        for r in major:
            element = background if r < 0 else scene[r].pattern
            out['family'].append(None if element is None else element.family)
            out['colour'].append('background' if r < 0 else scene[r].colour)
    return {'family': np.array(out['family'], dtype=object),
            'colour': np.array(out['colour'], dtype=object),
            'single': np.concatenate(out['single'])}


def describe(patches, kind):
    """``[N, 3, p, p]`` patches in [0, 1] -> ``[N, D]`` descriptors (see the module doc)."""
    if kind not in DESCRIPTORS:
        raise ValueError(f'descriptor must be one of {DESCRIPTORS}, got {kind!r}')
    patches = patches.float()
    if kind == 'pixels':
        return patches.flatten(1)
    if kind == 'mean_removed':
        return (patches - patches.mean((-2, -1), keepdim=True)).flatten(1)
    luminance = patches.mean(1)
    mean = luminance.mean((-2, -1), keepdim=True)
    amplitude = torch.fft.rfft2(luminance - mean, norm='ortho').abs()
    return (amplitude / mean.clamp_min(0.05)).flatten(1)


# ------------------------------------------------------------------ distances
def sample_pairs(codes, num_pairs, rng):
    """``(within, between)``: index pairs ``[n, 2]`` of tokens of the same code and of
    different codes, drawn as the module doc says (``within`` is empty when no code has
    two tokens)."""
    codes = np.asarray(codes)
    n = len(codes)
    order = np.argsort(codes, kind='stable')
    sorted_codes = codes[order]
    starts = np.searchsorted(sorted_codes, sorted_codes, side='left')
    sizes = np.searchsorted(sorted_codes, sorted_codes, side='right') - starts
    shared = np.nonzero(sizes > 1)[0]  # positions (in sorted order) with a partner
    within = np.zeros((0, 2), dtype=np.int64)
    if len(shared):
        a = rng.choice(shared, num_pairs)
        rank = a - starts[a]
        b = starts[a] + (rank + rng.integers(1, sizes[a])) % sizes[a]
        within = np.stack([order[a], order[b]], axis=1)
    between = np.zeros((0, 2), dtype=np.int64)
    if len(np.unique(codes)) > 1:
        found = []
        while sum(len(f) for f in found) < num_pairs:
            i, j = rng.integers(0, n, (2, 2 * num_pairs))
            keep = codes[i] != codes[j]
            found.append(np.stack([i[keep], j[keep]], axis=1))
        between = np.concatenate(found)[:num_pairs]
    return within, between


def pair_distance(x, pairs):
    """Euclidean distance between the rows of each pair, over the root of the descriptor
    length (an RMS difference: a pixel-scale number for ``pixels``)."""
    pairs = torch.as_tensor(pairs)
    if not len(pairs):
        return torch.zeros(0)
    return (x[pairs[:, 0]] - x[pairs[:, 1]]).norm(dim=1) / math.sqrt(x.shape[1])


def within_between(x, codes, num_pairs=100000, seed=0, groups=None, num_boot=0):
    """Mean within-code and between-code distance of the rows of ``x`` and their ratio;
    with ``groups`` (each token's scene) and ``num_boot``, a 95 % interval of the ratio
    from resampling scenes (pairs are kept and weighted by how often their first token's
    scene is drawn)."""
    rng = np.random.default_rng(seed)
    within, between = sample_pairs(codes, num_pairs, rng)
    d_in, d_out = pair_distance(x, within).double(), pair_distance(x, between).double()
    out = {'within': float(d_in.mean()), 'between': float(d_out.mean())}
    out['ratio'] = out['within'] / out['between']
    if groups is not None and num_boot:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        n = inverse.max() + 1
        # per-scene sums and counts of the pairs each scene anchors; a resample weights them
        sums = [np.bincount(inverse[p[:, 0]], weights=d.numpy(), minlength=n)
                for p, d in ((within, d_in), (between, d_out))]
        counts = [np.bincount(inverse[p[:, 0]], minlength=n) for p in (within, between)]
        weight = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                           for _ in range(num_boot)])
        ratios = (weight @ sums[0] / (weight @ counts[0])) / (weight @ sums[1] /
                                                               (weight @ counts[1]))
        out['ratio_ci'] = tuple(float(q) for q in np.percentile(ratios, [2.5, 97.5]))
    return out


def permuted_ratios(x, codes, num_perm=10, num_pairs=100000, seed=0):
    """Ratios with the codes shuffled over the tokens (each code keeps its size)."""
    rng = np.random.default_rng(seed)
    return [within_between(x, rng.permutation(codes), num_pairs, seed=seed + 1 + k)['ratio']
            for k in range(num_perm)]


def purity(codes, labels):
    """Share of tokens carrying their code's most common label (token-weighted cluster
    purity; a code of one token is pure, so compare with shuffled codes)."""
    codes = np.asarray(codes)
    _, label_ids = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    _, code_ids = np.unique(codes, return_inverse=True)
    table = np.zeros((code_ids.max() + 1, label_ids.max() + 1), dtype=np.int64)
    np.add.at(table, (code_ids, label_ids), 1)
    return float(table.max(1).sum() / len(codes))


# ------------------------------------------------------------------ the figure
def draw_code_rows(patches, codes, rows, columns=12, scale=4, seed=0, path=None):
    """A PIL image: one row per code of ``rows`` (up to ``columns`` of its patches drawn at
    random, ``scale`` x nearest-neighbour), then a last row of random patches, each row
    led by its label (code id and share of tokens). Saved to ``path`` if given."""
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    codes = np.asarray(codes)
    p = patches.shape[-1] * scale
    gap, label_w = 2, 120
    entries = []
    for code in rows:
        members = np.nonzero(codes == code)[0]
        pick = rng.choice(members, min(columns, len(members)), replace=False)
        entries.append((f'code {code}  {len(members) / len(codes):.1%}', pick))
    entries.append(('random patches', rng.choice(len(codes), columns, replace=False)))
    canvas = Image.new('RGB', (label_w + columns * (p + gap), len(entries) * (p + gap) + gap),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    pixels = (patches.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for r, (text, pick) in enumerate(entries):
        y = gap + r * (p + gap)
        draw.text((4, y + p // 2 - 6), text, fill=(0, 0, 0))
        for c, k in enumerate(pick):
            tile = Image.fromarray(pixels[k]).resize((p, p), Image.NEAREST)
            canvas.paste(tile, (label_w + c * (p + gap), y))
    if path is not None:
        canvas.save(path)
    return canvas


# ------------------------------------------------------------------ one tokenizer
@torch.no_grad()
def collect(tokenizer, world, start, count, batch_size=64, factorized=None):
    """Encode scenes ``start .. start + count - 1``: patches ``[N, 3, p, p]`` in [0, 1],
    semantic ids ``[N]`` (a factorised tokenizer's ids are split), each token's scene, and
    (``factorized``: a second, SGHC tokenizer) its full ids."""
    from unimm.datasets.transforms import pil_to_tensor
    side = math.isqrt(tokenizer.num_tokens)  # the protocol's ids are a square raster
    if side * side != tokenizer.num_tokens:
        raise ValueError(f'{tokenizer.num_tokens} tokens are not a square grid')
    grid = (side, side)
    patches, semantic, scenes, full = [], [], [], []
    for lo in range(start, start + count, batch_size):
        index = list(range(lo, min(lo + batch_size, start + count)))
        images = torch.stack([pil_to_tensor(world.image(i)) for i in index])
        semantic.append(tokenizer.semantic_ids(tokenizer.encode(images)).flatten().cpu())
        if factorized is not None:
            full.append(factorized.encode(images).flatten().cpu())
        patches.append(token_patches((images + 1) / 2, grid))
        scenes.append(np.repeat(index, grid[0] * grid[1]))
    out = {'patches': torch.cat(patches), 'codes': torch.cat(semantic).numpy(),
           'scenes': np.concatenate(scenes), 'grid': grid}
    if factorized is not None:
        out['full'] = torch.cat(full).numpy()
    return out


def analyse(data, labels=None, num_pairs=100000, num_perm=10, num_boot=200, seed=0):
    """The numbers of the module doc for collected tokens (see ``collect``)."""
    codes = data['codes']
    values, freq = np.unique(codes, return_counts=True)
    result = {'tokens': len(codes), 'scenes': len(np.unique(data['scenes'])),
              'codes_used': len(values),
              'top8_share': float(np.sort(freq)[::-1][:8].sum() / len(codes)),
              'distances': {}, 'purity': {}, 'purity_by_scenes': {}}
    groupings = {'semantic code': codes}
    if 'full' in data:
        groupings['SGHC id (code, sub-code)'] = data['full']
    if labels is not None:
        keys = [k for k in LABELS if labels[k][0] is not None]
        groupings['label (' + ', '.join(keys) + ')'] = np.array(
            ['/'.join(str(labels[k][t]) for k in keys) for t in range(len(codes))])
    for kind in DESCRIPTORS:
        x = describe(data['patches'], kind)
        rows = {}
        for name, grouping in groupings.items():
            rows[name] = within_between(x, grouping, num_pairs, seed, data['scenes'], num_boot)
        perm = permuted_ratios(x, codes, num_perm, num_pairs, seed)
        rows['semantic code']['permuted'] = (float(np.mean(perm)), float(np.min(perm)),
                                             float(np.max(perm)))
        result['distances'][kind] = rows
    if labels is not None:
        rng = np.random.default_rng(seed)
        for key in LABELS:
            if labels[key][0] is None:
                continue
            for subset, mask in (('all tokens', np.ones(len(codes), bool)),
                                 ('single-element patches', labels['single'])):
                c, lab = codes[mask], labels[key][mask]
                shuffled = [purity(rng.permutation(c), lab) for _ in range(num_perm)]
                result['purity'][f'{key}, {subset}'] = {
                    'tokens': int(mask.sum()), 'purity': purity(c, lab),
                    'shuffled': float(np.mean(shuffled)),
                    'majority': float(np.unique(lab.astype(str), return_counts=True)[1].max()
                                      / len(lab))}
            # purity falls as scenes are added (a code gathers more scenes' elements)
            scenes = np.unique(data['scenes'])
            sizes = [n for n in 2 ** np.arange(6, 20) if n < len(scenes)] + [len(scenes)]
            result['purity_by_scenes'][key] = {
                int(n): purity(codes[data['scenes'] <= scenes[n - 1]],
                               labels[key][data['scenes'] <= scenes[n - 1]]) for n in sizes}
    return result


# ------------------------------------------------------------------ the study and its page
WORLDS = {'textured128': dict(texture=True, resolution=128),
          'flat64': dict(texture=False, resolution=64)}
HELD_OUT = 100000  # scenes from here on are never trained on (the shapes recipes' test split)


def figure_rows(codes, labels, count):
    """Frequent codes for the figure: the most frequent codes whose tokens lie mostly on
    the background (``count - count // 2``), then those lying mostly inside shapes
    (``count // 2``): the background alone would fill a plain frequency ranking."""
    values, inverse, freq = np.unique(np.asarray(codes), return_inverse=True,
                                      return_counts=True)
    on_background = np.bincount(inverse, weights=labels['colour'] == 'background',
                                minlength=len(values))
    ranked = np.lexsort((values, -freq))
    background = [int(values[i]) for i in ranked if 2 * on_background[i] > freq[i]]
    inside = [int(values[i]) for i in ranked if 2 * on_background[i] <= freq[i]]
    return background[:count - count // 2] + inside[:count // 2]


def run_world(name, spc, sghc=None, scenes=512, image_path=None, rows=8, seed=0,
              num_pairs=100000, num_perm=10, num_boot=200):
    """The study on held-out scenes ``HELD_OUT ..`` of world ``name`` for an SPC export
    folder (and optionally the SGHC export trained on it); the figure goes to
    ``image_path``."""
    from unimm.datasets.shapes import ShapesWorld
    from unimm.models.base import PretrainedMixin
    world = ShapesWorld(seed=0, **WORLDS[name])
    tokenizer = PretrainedMixin.from_pretrained(spc).eval()
    factorized = PretrainedMixin.from_pretrained(sghc).eval() if sghc else None
    data = collect(tokenizer, world, HELD_OUT, scenes, factorized=factorized)
    labels = token_labels(world, range(HELD_OUT, HELD_OUT + scenes), data['grid'])
    result = analyse(data, labels, num_pairs, num_perm, num_boot, seed)
    if factorized is not None:
        result['sghc_semantic_ids_identical'] = bool(np.array_equal(
            factorized.factorization.split(torch.from_numpy(data['full']))[0].numpy(),
            data['codes']))
    picked = figure_rows(data['codes'], labels, rows)
    result['figure_rows'] = []
    for code in picked:
        mask = data['codes'] == code
        entry = {'code': code, 'tokens': int(mask.sum())}
        for key in LABELS:
            if labels[key][0] is not None:
                vals, counts = np.unique(labels[key][mask].astype(str), return_counts=True)
                entry[key] = {str(v): int(c) for v, c in zip(vals, counts)}
        result['figure_rows'].append(entry)
    if image_path is not None:
        draw_code_rows(data['patches'], data['codes'], picked, seed=seed, path=image_path)
        result['figure'] = image_path
    result.update(world=name, spc=spc, sghc=sghc, first_scene=HELD_OUT,
                  patch=int(data['patches'].shape[-1]), grid=list(data['grid']))
    return result


def _ci(row):
    lo, hi = row['ratio_ci']
    return f"{row['ratio']:.3f} [{lo:.3f}, {hi:.3f}]"


def report(results, command, doc_path):
    """The page (``doc_path``, e.g. docs/fig4_code_patches.md) from ``run_world`` results,
    one per world; figures are linked relative to the page."""
    import os
    lines = [
        '# Fig. 4: patches that share a semantic code look alike',
        '',
        f'Generated by `{command}`; do not edit by hand. The paper illustrates that the '
        'image patches quantised to one semantic code of a trained SPC share their texture. '
        'Here that is measured on the shapes world: the stage-1 SPC export of each world '
        '(`registry_configs/shapes/spc_{textured128,flat64}.py`) encodes held-out scenes, '
        "every token keeps its pixel patch (the image region of its grid cell) under its code, and "
        'pairs of patches of the same code are compared with pairs of different codes '
        '(`unimm/evaluation/code_patches.py` says exactly how).',
        '',
        '- **ratio** = mean within-code distance / mean between-code distance (RMS over the '
        'descriptor); 0 means a code holds one appearance, 1 that codes say nothing about '
        'the pixels. [..] is a 95 % bootstrap interval over scenes; **shuffled** is the '
        'ratio with the codes permuted over the tokens (code sizes kept): mean and range.',
        '- descriptors: `pixels` (RGB in [0, 1]); `mean_removed` (each channel\'s mean taken '
        'out, so colour and brightness alone cannot decide); `spectrum` (amplitude spectrum '
        'of the mean-removed luminance over the mean luminance: relative contrast per '
        'spatial frequency, independent of hue and of where a stripe or dot falls).',
        '- rows besides the semantic code: the SGHC export\'s full ids (semantic code and '
        'pixel sub-code), and the ground-truth label of the scene element covering most of '
        'the patch (pattern family and colour, read from the renderer) as if it were a code.',
        '- purity: share of tokens carrying their code\'s most common label; *shuffled* '
        'gives the value for permuted codes of the same sizes, *majority* the most common '
        'label\'s share. Single-element patches lie wholly inside one shape or the '
        'background.',
        '']
    for r in results:
        lines += [f"## {r['world']}: {r['scenes']} held-out scenes ({r['first_scene']}..), "
                  f"{r['tokens']} tokens", '',
                  f"SPC export `{r['spc']}`: {r['grid'][0]} x {r['grid'][1]} tokens of "
                  f"{r['patch']} x {r['patch']} px per image; {r['codes_used']} codes in use, "
                  f"the 8 most frequent hold {r['top8_share']:.1%} of the tokens."
                  + (f" SGHC export `{r['sghc']}`: its semantic ids equal the SPC's on every "
                     'token.' if r.get('sghc_semantic_ids_identical') else
                     (f" SGHC export `{r['sghc']}`: its semantic ids DIFFER from the SPC's."
                      if r.get('sghc') else '')),
                  '',
                  '| descriptor | grouping | within | between | ratio [95 % CI] | shuffled |',
                  '| --- | --- | --- | --- | --- | --- |']
        for kind, rows in r['distances'].items():
            for name, row in rows.items():
                perm = row.get('permuted')
                shuffled = (f'{perm[0]:.3f} ({perm[1]:.3f}–{perm[2]:.3f})' if perm else '')
                lines.append(f"| {kind} | {name} | {row['within']:.4f} | {row['between']:.4f} "
                             f'| {_ci(row)} | {shuffled} |')
        if r['purity']:
            lines += ['', '| label, tokens | tokens | purity | shuffled | majority |',
                      '| --- | --- | --- | --- | --- |']
            for name, row in r['purity'].items():
                lines.append(f"| {name} | {row['tokens']} | {row['purity']:.3f} | "
                             f"{row['shuffled']:.3f} | {row['majority']:.3f} |")
            lines.append('')
            for key, by in r['purity_by_scenes'].items():
                lines.append(f'Purity ({key}, all tokens) of the first N scenes: ' + ', '.join(
                    f'N = {n}: {v:.3f}' for n, v in by.items()) + '.')
        if r.get('figure'):
            link = os.path.relpath(r['figure'], os.path.dirname(doc_path))
            lines += ['', f"![patches of frequent codes, {r['world']}]({link})",
                      '', 'Rows: the most frequent codes whose tokens lie mostly on the '
                      'background, then those lying mostly inside shapes (with the share '
                      'of all tokens each holds); 12 of its patches drawn at random, 4x '
                      'enlarged; the last row: random patches. What the rows\' tokens are:',
                      '']
            for e in r['figure_rows']:
                parts = [f"code {e['code']} ({e['tokens']} tokens)"]
                for key in LABELS:
                    if key in e:
                        parts.append(key + ' ' + ', '.join(
                            f'{v} {c}' for v, c in sorted(e[key].items(), key=lambda t: -t[1])))
                lines.append('- ' + '; '.join(parts))
        lines.append('')
    return '\n'.join(lines)

