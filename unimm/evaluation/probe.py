"""A cheap understanding measure: a small probe trained on frozen vision features (e.g.
``TokenizerFeatures``) to read shapes-world facts back: how many shapes, which colours,
which kinds and which colour-kind pairs are in the scene. Features that keep what an LLM
needs to answer shapes VQA score high; it costs seconds where an LLM run costs minutes.
The probe sees the token grid; an LLM reads a 1-D sequence, so the evaluator also reports
how well an object token's grid column can be read from its features alone."""
import math

import torch
from torch import nn
from torch.nn import functional as F

from unimm.datasets.collate import collate_skip_corrupt
from unimm.datasets.shapes import COLOURS, KINDS
from unimm.datasets.shapes.world import MAX_SHAPES
from unimm.registry import DATASETS, METRICS

PAIRS = tuple((c, k) for c in COLOURS for k in KINDS)
# fact groups: (name, number of outputs, multi-label?)
GROUPS = (('count', MAX_SHAPES, False), ('colours', len(COLOURS), True),
          ('kinds', len(KINDS), True), ('pairs', len(PAIRS), True))


def scene_facts(scene):
    """Targets of one scene: count index and multi-hot colours / kinds / colour-kind pairs."""
    colours = {s.colour for s in scene}
    kinds = {s.kind for s in scene}
    pairs = {(s.colour, s.kind) for s in scene}
    return {'count': torch.tensor(len(scene) - 1),
            'colours': torch.tensor([c in colours for c in COLOURS], dtype=torch.float32),
            'kinds': torch.tensor([k in kinds for k in KINDS], dtype=torch.float32),
            'pairs': torch.tensor([p in pairs for p in PAIRS], dtype=torch.float32)}


class Probe(nn.Module):
    """Per-token MLP, ``blocks`` residual depthwise-separable 3x3 convolutions over the
    token grid (a shape spans several tokens), mean ‖ max pooling, one linear head."""

    def __init__(self, in_dim, hidden, blocks=2):
        super().__init__()
        self.token = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
                          nn.Conv2d(hidden, hidden, 1), nn.GELU()) for _ in range(blocks))
        self.head = nn.Linear(2 * hidden, sum(n for _, n, _ in GROUPS))

    def forward(self, feats):
        b, n, _ = feats.shape
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f'Probe: {n} tokens are not a square grid')
        x = self.token(feats).transpose(1, 2).reshape(b, -1, side, side)
        for block in self.blocks:
            x = x + block(x)
        x = x.flatten(2)
        logits = self.head(torch.cat([x.mean(-1), x.amax(-1)], dim=-1))
        return dict(zip([g for g, _, _ in GROUPS], logits.split([n for _, n, _ in GROUPS], -1)))


def object_tokens(scene, side):
    """``[side * side]`` bool, raster order: the tokens whose centre lies in a shape's box."""
    centres = (torch.arange(side, dtype=torch.float64) + 0.5) / side
    y, x = torch.meshgrid(centres, centres, indexing='ij')
    inside = torch.zeros(side, side, dtype=torch.bool)
    for shape in scene:
        x0, y0, x1, y1 = shape.bbox
        inside |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    return inside.flatten()


def column_accuracy(x_train, m_train, x_test, m_test, ridge=0.1):
    """Held-out accuracy of a ridge-regression readout of each selected token's grid column
    from its features alone (``x``: [B, N, D] in raster order, ``m``: [B, N] selection):
    how much absolute position the features carry; chance is 1 / side."""
    side = math.isqrt(x_train.shape[1])
    columns = torch.arange(x_train.shape[1]) % side

    def rows(x, m):
        feats = F.pad(x[m].double(), (0, 1), value=1.0)  # a bias column
        return feats, columns.expand(len(x), -1)[m]

    (a, y_a), (b, y_b) = rows(x_train, m_train), rows(x_test, m_test)
    gram = a.T @ a + ridge * torch.eye(a.shape[1], dtype=a.dtype)
    weights = torch.linalg.solve(gram, a.T @ F.one_hot(y_a, side).double())
    return ((b @ weights).argmax(1) == y_b).double().mean().item()


def probe_loss(logits, targets):
    return sum(F.cross_entropy(logits[g], targets[g]) if not multi else
               F.binary_cross_entropy_with_logits(logits[g], targets[g])
               for g, _, multi in GROUPS)


def group_hits(logits, targets):
    """Per group, whether each scene's answer is exactly right (the whole set for the
    multi-label groups)."""
    out = {}
    for g, _, multi in GROUPS:
        pred = (logits[g] > 0).float() if multi else logits[g].argmax(-1)
        right = pred == targets[g]
        out[g] = right.all(-1) if multi else right
    return out


@METRICS.register_module()
class ShapesProbeEvaluator:
    """Train a ``Probe`` on ``model(images)`` features of ``train`` scenes, once per seed of
    ``seeds``; report the exact-answer accuracy per fact group on ``test`` scenes, their
    mean (``accuracy``, averaged over seeds), its standard error over test scenes, each
    seed's accuracy, the blind baseline (each group's most frequent training answer), and
    ``column_accuracy``: `column_accuracy` over the tokens inside a shape's box, beside
    ``column_chance``. ``model`` is a feature module: ``forward(images) -> [B, N, D]`` (N a
    square grid)."""

    def __init__(self, train, test, hidden=64, blocks=2, epochs=40, lr=3e-3, batch_size=128,
                 seeds=(0,), feature_batch_size=100):
        self.train_set = DATASETS.build(train, path='train')
        self.test_set = DATASETS.build(test, path='test')
        for name, ds in (('train', self.train_set), ('test', self.test_set)):
            if not hasattr(ds, 'world'):
                raise ValueError(f'ShapesProbeEvaluator.{name}: needs a shapes-world dataset')
        self.hidden, self.blocks, self.epochs, self.lr = hidden, blocks, epochs, lr
        self.batch_size, self.seeds = batch_size, tuple(seeds)
        self.feature_batch_size = feature_batch_size

    @torch.no_grad()
    def _features(self, model, dataset):
        device = next(model.parameters()).device
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.feature_batch_size,
                                             collate_fn=collate_skip_corrupt)
        feats, facts, masks = [], [], []
        for batch in loader:
            feats.append(model(batch['image'].to(device)).float().cpu())
            side = math.isqrt(feats[-1].shape[1])
            scenes = [dataset.world.scene(int(i)) for i in batch['index']]
            facts += [scene_facts(scene) for scene in scenes]
            masks += [object_tokens(scene, side) for scene in scenes]
        return (torch.cat(feats), {g: torch.stack([f[g] for f in facts]) for g, _, _ in GROUPS},
                torch.stack(masks))

    @torch.enable_grad()
    def _train(self, x, y, seed):
        """A probe trained on (x, y) with AdamW and a one-cycle schedule."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            probe = Probe(x.shape[-1], self.hidden, self.blocks)
        opt = torch.optim.AdamW(probe.parameters(), lr=self.lr, weight_decay=0.01)
        steps = self.epochs * -(-len(x) // self.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, self.lr, total_steps=max(steps, 1),
                                                    pct_start=0.1)
        order = torch.Generator().manual_seed(seed)
        for _ in range(self.epochs):
            for idx in torch.randperm(len(x), generator=order).split(self.batch_size):
                loss = probe_loss(probe(x[idx]), {g: t[idx] for g, t in y.items()})
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        return probe.eval()

    def __call__(self, model, work_dir=None):
        x_train, y_train, m_train = self._features(model, self.train_set)
        x_test, y_test, m_test = self._features(model, self.test_set)
        per_seed, by_group, per_scene = [], {g: 0.0 for g, _, _ in GROUPS}, 0.0
        for seed in self.seeds:
            with torch.no_grad():
                hits = group_hits(self._train(x_train, y_train, seed)(x_test), y_test)
            scene_acc = torch.stack([h.float() for h in hits.values()]).mean(0)
            per_seed.append(scene_acc.mean().item())
            per_scene = per_scene + scene_acc / len(self.seeds)
            for g, h in hits.items():
                by_group[g] += h.float().mean().item() / len(self.seeds)
        n = len(x_test)
        return {'accuracy': sum(per_seed) / len(per_seed),
                'stderr': (per_scene.std() / n ** 0.5).item() if n > 1 else float('nan'),
                'accuracy_by_seed': per_seed, 'accuracy_by_group': by_group,
                'blind_baseline': blind_baseline(y_train, y_test),
                'column_accuracy': column_accuracy(x_train, m_train, x_test, m_test),
                'column_chance': 1 / math.isqrt(x_test.shape[1]),
                'num_train': len(x_train), 'num_test': n}


def blind_baseline(y_train, y_test):
    """Mean over groups of the accuracy of always answering the training set's most
    frequent answer (what a probe that ignores the image reaches)."""
    accs = []
    for g, _, multi in GROUPS:
        rows = y_train[g] if multi else y_train[g][:, None]
        values, counts = rows.unique(dim=0, return_counts=True)
        top = values[counts.argmax()]
        test = y_test[g] if multi else y_test[g][:, None]
        accs.append((test == top).all(-1).float().mean().item())
    return sum(accs) / len(accs)
