"""Quantizers: SGHC searches only its semantic code's sub-codes (agreeing with brute-force
and masked flat searches), learns by loss or EMA and restarts dead sub-codes from patches
of the same semantic code; SPC k-means-initialises once, EMA-updates, restarts dead codes
and is a fixed deterministic lookup in eval / frozen mode; both survive a state_dict
round-trip and keep every rank's codebook identical under torch.distributed."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from unimm.models.quantizers import QuantizerOutput
from unimm.registry import MODELS

K, M, D = 64, 4, 8


def sghc(**kw):
    cfg = dict(type='HierarchicalCodebook', num_semantic_codes=K, sub_codes=M, dim=D)
    return MODELS.build(dict(cfg, **kw))


def spc(**kw):
    return MODELS.build(dict(dict(type='SemanticPriorityCodebook', num_codes=K, dim=D), **kw))


def batch(b=3, n=50, seed=0):
    g = torch.Generator().manual_seed(1000 + seed)  # a stream apart from the init's
    return torch.randn(b, n, D, generator=g), torch.randint(K, (b, n), generator=g)


def clusters(num=8, per=40, noise=0.05, seed=0):
    """Well-separated unit-norm clusters around +-basis vectors, with their labels."""
    g = torch.Generator().manual_seed(1000 + seed)
    centres = torch.cat([torch.eye(D), -torch.eye(D)])[:num]
    labels = torch.arange(num).repeat_interleave(per)
    z = centres[labels] + noise * torch.randn(len(labels), D, generator=g)
    perm = torch.randperm(len(labels), generator=g)
    return z[perm][None], labels[perm], centres


def buffers(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- SGHC


@pytest.mark.parametrize('update', ['loss', 'ema'])
@pytest.mark.parametrize('l2_norm', [True, False])
def test_sghc_search_stays_in_group_and_matches_references(update, l2_norm):
    torch.manual_seed(0)
    q = sghc(update=update, l2_norm=l2_norm).eval()
    z, sem = batch()
    out = q(z, sem)
    assert isinstance(out, QuantizerOutput)
    assert out.ids.shape == sem.shape and out.ids.dtype == torch.long
    assert torch.equal(out.ids // M, sem)

    zf = F.normalize(z, dim=-1) if l2_norm else z
    codes = q.lookup(torch.arange(K * M))
    brute = torch.empty_like(sem)
    for b in range(sem.shape[0]):
        for n in range(sem.shape[1]):
            i = int(sem[b, n])
            d = ((zf[b, n] - codes[i * M:(i + 1) * M]) ** 2).sum(-1)
            brute[b, n] = i * M + d.argmin()
    assert torch.equal(out.ids, brute)

    flat = torch.cdist(zf.reshape(-1, D), codes) ** 2
    outside = (torch.arange(K * M)[None] // M) != sem.reshape(-1, 1)
    masked = flat.masked_fill(outside, float('inf')).argmin(-1).view_as(sem)
    assert torch.equal(out.ids, masked)

    assert torch.allclose(q.lookup(out.ids), out.quantized, atol=1e-6)
    assert out.quantized.shape == z.shape
    assert 0 < out.stats['usage'] <= 1 and 0 < out.stats['group_usage'] <= 1
    assert 1 <= out.stats['perplexity'] <= K * M


def test_sghc_straight_through_and_loss_mode_gradients():
    torch.manual_seed(0)
    q = sghc(update='loss').train()
    z, sem = batch()
    z.requires_grad_(True)
    out = q(z, sem)
    (out.quantized * torch.randn_like(out.quantized)).sum().backward(retain_graph=True)
    assert z.grad is not None and z.grad.abs().sum() > 0
    z.grad = None

    out.loss.backward()
    grad = q.embedding.weight.grad.abs().sum(-1)
    used = torch.zeros(K * M, dtype=torch.bool)
    used[out.ids.flatten()] = True
    assert (grad[used] > 0).all() and (grad[~used] == 0).all()
    assert z.grad.abs().sum() > 0  # the commitment term


def test_sghc_ema_moves_used_codes_toward_their_patches():
    torch.manual_seed(0)
    q = sghc(update='ema', restart=False).train()
    z, sem = batch()
    before = q.table.clone()
    out = q(z, sem)
    zf = F.normalize(z, dim=-1).reshape(-1, D)
    ids = out.ids.flatten()
    used = ids.unique()
    target = F.normalize(torch.zeros(K * M, D).index_add_(0, ids, zf), dim=-1)[used]
    assert ((q.table[used] * target).sum(-1) > (before[used] * target).sum(-1)).all()
    unused = torch.ones(K * M, dtype=torch.bool)
    unused[used] = False
    assert torch.equal(q.table[unused], before[unused])
    assert torch.allclose(q.table.norm(dim=-1), torch.ones(K * M), atol=1e-5)


@pytest.mark.parametrize('update', ['loss', 'ema'])
def test_sghc_dead_sub_codes_restart_from_same_semantic_code(update):
    torch.manual_seed(0)
    q = sghc(update=update).train()
    # semantic codes 0..9 are seen, 6 known (distinct, random) patches each; nothing has
    # been used yet, so every sub-code left unused by this batch is dead
    sem = torch.arange(10).repeat_interleave(6)[None]
    z = torch.randn(1, 60, D)
    before = q.weight.detach().clone()
    out = q(z, sem)
    used = out.ids.flatten().unique()
    changed = (q.weight.detach() != before).any(-1).nonzero().squeeze(1)
    restarted = changed[~torch.isin(changed, used)]  # EMA also moves the used ones
    assert len(restarted) == out.stats['dead_restarted'] == 10 * M - len(used)
    assert (restarted // M < 10).all()  # only groups seen in the batch
    zf = F.normalize(z, dim=-1)[0]
    for row in restarted.tolist():  # each took one of its own semantic code's patches
        gap = (zf - F.normalize(q.weight.detach()[row], dim=-1)).abs().amax(-1)
        assert gap.min() < 0.1 and sem[0, gap.argmin()] == row // M, row  # jittered copy


def test_sghc_restarts_at_most_k_sub_codes_a_step_lowest_rows_first():
    torch.manual_seed(0)
    q = sghc(update='ema').train()
    # one patch of each of the K semantic codes: at least K * (M - 1) sub-codes are dead,
    # more than K, so the K lowest dead rows restart now and the rest on the next steps
    sem = torch.arange(K)[None]
    z = torch.randn(1, K, D)
    out = q(z, sem)
    used = out.ids.flatten().tolist()
    dead = [r for r in range(K * M) if r not in used]
    assert len(dead) > K and out.stats['dead_restarted'] == K
    zf = F.normalize(z, dim=-1)[0]
    restarted = [r for r in dead if (q.table[r] - zf[r // M]).abs().max() < 0.1]
    assert restarted == dead[:K]  # each took the patch of its semantic code
    assert q(z, sem).stats['dead_restarted'] > 0  # the rest follow on the next step


# ---------------------------------------------------------------- SPC


def test_spc_kmeans_init_once_recovers_clusters():
    torch.manual_seed(0)
    q = spc(kmeans_iters=10, dead_code_threshold=0.0).train()
    calls = []
    kmeans = q._kmeans_init
    q._kmeans_init = lambda z: (calls.append(1), kmeans(z))
    z, labels, centres = clusters()
    assert not q.initted
    ids = q(z).ids[0]
    assert q.initted and len(calls) == 1
    zf = F.normalize(z[0], dim=-1)
    for code in ids.unique():  # each code is the centre of the vectors it holds
        centre = F.normalize(zf[ids == code].sum(0), dim=0)
        assert torch.allclose(q.codebook[code], centre, atol=1e-5)
    q(clusters(seed=1)[0])
    assert len(calls) == 1

    q.eval()
    z, labels, centres = clusters(seed=2)
    ids = q(z).ids[0]
    for code in ids.unique():  # purity 100%: every code holds one cluster only
        assert labels[ids == code].unique().numel() == 1
    assert (q.codebook[ids.unique()] @ centres.t()).amax(-1).min() > 0.95
    assert torch.allclose(q.codebook.norm(dim=-1), torch.ones(K), atol=1e-5)


def test_spc_ema_moves_used_codes_and_keeps_unit_norm():
    torch.manual_seed(0)
    q = spc(kmeans_init=False, dead_code_threshold=0.0).train()
    z, _ = batch()
    before = q.codebook.clone()
    out = q(z)
    ids = out.ids.flatten()
    used = ids.unique()
    zf = F.normalize(z, dim=-1).reshape(-1, D)
    target = F.normalize(torch.zeros(K, D).index_add_(0, ids, zf), dim=-1)[used]
    assert ((q.codebook[used] * target).sum(-1) > (before[used] * target).sum(-1)).all()
    assert torch.allclose(q.codebook.norm(dim=-1), torch.ones(K), atol=1e-5)
    assert out.stats['usage'] == len(used) / K and 1 <= out.stats['perplexity'] <= K


def test_spc_dead_codes_restart_from_batch():
    torch.manual_seed(0)
    q = spc(kmeans_init=False, dead_code_threshold=1.0).train()
    z = clusters(num=2, per=20)[0]  # 40 vectors: most of the 64 codes go unused
    before = q.codebook.clone()
    out = q(z)
    used = out.ids.flatten().unique()
    dead = torch.ones(K, dtype=torch.bool)
    dead[used] = False
    assert out.stats['dead_restarted'] == dead.sum() > 0
    zf = F.normalize(z, dim=-1)[0]
    gap = (q.codebook[dead][:, None] - zf[None]).abs().amax(-1).min(-1).values
    assert (gap < 1e-6).all() and not torch.equal(q.codebook[dead], before[dead])
    assert torch.equal(q.cluster_size[dead], torch.ones(int(dead.sum())))


@pytest.mark.parametrize('mode', ['eval', 'freeze'])
def test_spc_eval_and_frozen_are_deterministic_and_change_nothing(mode):
    torch.manual_seed(0)
    q = spc().train()
    for seed in range(3):
        q(batch(seed=seed)[0])
    q.eval() if mode == 'eval' else q.freeze()
    state = buffers(q)
    z = batch(seed=9)[0]
    a, b = q(z), q(z)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.quantized, b.quantized)
    assert all(torch.equal(v, q.state_dict()[k]) for k, v in state.items())
    assert torch.allclose(q.lookup(a.ids), a.quantized, atol=1e-6)
    assert torch.allclose(q.codebook.norm(dim=-1), torch.ones(K), atol=1e-5)


# ---------------------------------------------------------------- both


@pytest.mark.parametrize('name', ['spc', 'sghc_loss', 'sghc_ema'])
def test_state_dict_round_trip_preserves_ids(name, tmp_path):
    make = {'spc': spc, 'sghc_loss': lambda: sghc(update='loss'),
            'sghc_ema': lambda: sghc(update='ema')}[name]
    torch.manual_seed(0)
    q = make().train()
    z, sem = batch()
    args = (z,) if name == 'spc' else (z, sem)
    for seed in range(2):
        q(*((batch(seed=seed)[0],) if name == 'spc' else batch(seed=seed)))
    q.eval()
    save_file(q.state_dict(), str(tmp_path / 'q.safetensors'))
    torch.manual_seed(1)
    fresh = make()
    fresh.load_state_dict(load_file(str(tmp_path / 'q.safetensors')))
    fresh.eval()
    assert torch.equal(fresh(*args).ids, q(*args).ids)
    if name == 'spc':  # k-means does not run again after loading
        assert fresh.initted


def _distributed_worker(rank, world, folder):
    torch.set_num_threads(1)  # a forked child must not reuse the parent's thread pool
    dist.init_process_group('gloo', init_method=f'file://{folder}/store', rank=rank,
                            world_size=world)
    torch.manual_seed(0)  # same init everywhere, as DeepSpeed guarantees
    models = {'spc': spc().train(), 'sghc': sghc(update='ema').train()}
    torch.manual_seed(100 + rank)  # different data and restart draws per rank
    for step in range(3):
        z, sem = batch(b=2, n=40, seed=10 * step + rank)
        models['spc'](z)
        models['sghc'](z, sem)
    for name, model in models.items():
        save_file(model.state_dict(), f'{folder}/{name}{rank}.safetensors')
    dist.destroy_process_group()


def test_distributed_ranks_keep_identical_codebooks(tmp_path):
    # fork: the children reuse this process' imports instead of paying for them again
    mp.start_processes(_distributed_worker, args=(2, str(tmp_path)), nprocs=2,
                       start_method='fork')
    torch.manual_seed(0)
    init = {'spc': spc().state_dict(), 'sghc': sghc(update='ema').state_dict()}
    for name, key in (('spc', 'codebook'), ('sghc', 'table')):
        a, b = (load_file(str(tmp_path / f'{name}{r}.safetensors')) for r in range(2))
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert not torch.equal(a[key], init[name][key]), name  # training did change them
