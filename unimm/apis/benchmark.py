"""The benchmarks behind tools/benchmark.py, one function per WHAT (``BENCHMARKS``), each
taking the tool's parsed arguments; ``run_benchmark`` checks the device, runs one and
prints / writes its results. What each measures: the tool's help."""
import json
import os
import statistics
import time

import torch

SIGLIP_L16_256 = dict(image_size=256, patch_size=16, hidden_size=1024, intermediate_size=4096,
                      num_hidden_layers=24, num_attention_heads=16)


def timed(fn, iters=20, warmup=5):
    """Seconds per call (CUDA-synchronised)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def kernel_profile(fn, steps, top=25):
    """Where the time of one call of ``fn`` (``steps`` decode steps) goes, from the torch
    profiler: per kernel (on a CPU: per op, self time) its microseconds and calls per step,
    the ``top`` longest, and the total per step."""
    from torch.profiler import ProfilerActivity, profile
    cuda = torch.cuda.is_available()
    with profile(activities=[ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    kind = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    rows = [dict(name=e.key, us_per_step=round(
                     (e.self_device_time_total if cuda else e.self_cpu_time_total) / steps, 1),
                 calls_per_step=round(e.count / steps, 2))
            for e in prof.key_averages() if e.device_type == kind]
    rows = sorted((r for r in rows if r['us_per_step'] > 0), key=lambda r: -r['us_per_step'])
    return dict(us_per_step=round(sum(r['us_per_step'] for r in rows), 1), top=rows[:top])


def semhitok_paper_config():
    return dict(
        type='SemHiTok', stage='enhance',
        semantic_encoder=dict(type='SemanticEncoder', init='random', vision_config=SIGLIP_L16_256),
        semantic_quantizer=dict(type='SemanticPriorityCodebook', num_codes=16384, dim=32),
        semantic_decoder=dict(type='SemanticDecoder', in_dim=32, width=1024, depth=3,
                              num_heads=16, out_dim=1024, num_tokens=256),
        pixel_encoder=dict(type='ViTEncoder', image_size=256, patch_size=16, preset='base',
                           out_dim=32),
        pixel_quantizer=dict(type='HierarchicalCodebook', num_semantic_codes=16384,
                             sub_codes=12, dim=32),
        pixel_decoder=dict(type='EnhanceDecoder', image_size=256, patch_size=16, in_dim=64),
        # SemHiTok validates its pixel stage up front; the loss is not run here
        pixel_loss=dict(type='PixelReconstructionLoss', l1_weight=1.0, l2_weight=1.0,
                        perceptual_weight=0.0, lpips=None))


def bench_tokenizer(batch):
    from unimm.registry import MODELS
    device, dtype = torch.device('cuda'), torch.bfloat16
    cfg = semhitok_paper_config()
    model = MODELS.build(cfg).to(device=device, dtype=dtype).eval()
    # the raw stack and the SGHC quantizer alone: the same components, built on their own
    parts = {k: MODELS.build(cfg[k]).to(device=device, dtype=dtype).eval()
             for k in ('semantic_encoder', 'pixel_encoder', 'pixel_quantizer', 'pixel_decoder')}
    sghc = parts['pixel_quantizer']
    x = torch.rand(batch, 3, 256, 256, device=device, dtype=dtype) * 2 - 1
    with torch.inference_mode():
        ids = model.encode(x)
        t_encode = timed(lambda: model.encode(x))
        t_decode = timed(lambda: model.decode(ids))
        # the raw stack: the same networks, no projection, quantizers or fusion
        enc_s, enc_p = parts['semantic_encoder'].model, parts['pixel_encoder']
        codes = torch.randn(batch, 256, 64, device=device, dtype=dtype)
        t_raw_encode = timed(lambda: (enc_s(pixel_values=x), enc_p(x)))
        t_raw_decode = timed(lambda: parts['pixel_decoder'](codes))
        # SGHC quantization alone, at the encode's token count
        z = enc_p(x)
        sem_ids = model.semantic_ids(ids)
        t_sghc = timed(lambda: sghc(z, semantic_ids=sem_ids))
        # hierarchical vs flat search at 16,384 tokens, d = 32
        table = sghc.codes(torch.arange(16384 * 12, device=device)).float()
        zf = torch.randn(16384, 32, device=device)
        si = torch.randint(0, 16384, (16384,), device=device)
        t_flat = timed(lambda: torch.cdist(zf, table).argmin(-1), iters=5, warmup=2)
        t_hier = timed(lambda: sghc(zf.view(1, -1, 32).to(dtype), semantic_ids=si.view(1, -1)))
    return {
        'device': torch.cuda.get_device_name(), 'batch': batch, 'dtype': 'bf16',
        'encode_img_s': batch / t_encode, 'decode_img_s': batch / t_decode,
        'raw_encode_img_s': batch / t_raw_encode, 'raw_decode_img_s': batch / t_raw_decode,
        'encode_vs_raw': t_raw_encode / t_encode, 'decode_vs_raw': t_raw_decode / t_decode,
        'sghc_ms': t_sghc * 1e3, 'sghc_share_of_encode': t_sghc / t_encode,
        'flat_search_16k_ms': t_flat * 1e3, 'hierarchical_16k_ms': t_hier * 1e3,
    }


QWEN25_3B = dict(model_type='qwen2', hidden_size=2048, intermediate_size=11008,
                 num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
                 tie_word_embeddings=True, vocab_size=151936, max_position_embeddings=4096)


def copy_bandwidth(device):
    """Device memory bandwidth in bytes/s (a 2 GiB copy), the floor's denominator."""
    x = torch.empty(2 * 1024**3, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    return 2 * x.numel() / timed(lambda: y.copy_(x), iters=10, warmup=3)


def generation_paper_shape(device, dtype, head, tokenizer_dir):
    """GenerationMLLM at the paper's generation shape with random weights."""
    from unimm.apis.tiny_lm import train_bpe_tokenizer
    from unimm.registry import MODELS
    train_bpe_tokenizer(['a photo of a cat'], vocab_size=300).save_pretrained(tokenizer_dir)
    with torch.device(device):
        model = MODELS.build(dict(type='GenerationMLLM', llm=QWEN25_3B, tokenizer=tokenizer_dir,
                                  num_semantic=16384, sub_codes=12, num_image_tokens=256,
                                  visual_head=dict(type=head)))
    return model.to(dtype).eval()


def bench_generate(batches, head='FlatVisualHead', prompt_len=32, cfg_scale=4.0,
                   tuning='coordinate_descent', gqa_decode=True, fuse_projections=True,
                   jacobi_windows=(), profile=0):
    import tempfile
    from unimm.inference.sampler import CFGSampler
    device = torch.device('cuda')
    bandwidth = copy_bandwidth(device)
    with tempfile.TemporaryDirectory() as tmp:
        model = generation_paper_shape(device, torch.bfloat16, head, tmp)
    n = model.num_image_tokens
    params = sum(p.numel() for p in model.parameters())
    floor = n * params * 2 / bandwidth  # every weight read once per step, as the anchors count
    gen = torch.Generator().manual_seed(0)
    rows, jacobi = [], []
    for batch in batches:
        sampler = CFGSampler(model, max_batch=batch, max_prompt_len=prompt_len + 1,
                             tuning=tuning, gqa_decode=gqa_decode,
                             fuse_projections=fuse_projections)
        prompts = [torch.randint(0, model.text_vocab, (prompt_len,), generator=gen).tolist()
                   + [model.boi_id] for _ in range(batch)]
        uncond = model.prompt_ids([None] * batch)
        run = lambda: sampler.generate(prompts, uncond, cfg_scale=cfg_scale, seed=0)  # noqa: E731
        seconds = timed(run, iters=3, warmup=2)  # warm-up compiles and captures the graph
        rows.append(dict(batch=batch, seconds=round(seconds, 3),
                         img_tokens_per_s=round(n * batch / seconds, 1),
                         images_per_s=round(batch / seconds, 2),
                         ratio_to_floor=round(seconds / floor, 2)))
        if profile:
            rows[-1]['profile'] = kernel_profile(run, n, top=profile)
        print(json.dumps(rows[-1]), flush=True)
        if batch == 1 and jacobi_windows:
            jacobi = bench_jacobi(sampler, prompts, uncond, cfg_scale, seconds, n,
                                  jacobi_windows)
    from unimm.inference import gemv
    extra = {'jacobi': jacobi, 'date': time.strftime('%Y-%m-%d')} if jacobi_windows else {}
    return {**extra, 'device': torch.cuda.get_device_name(), 'head': head, 'tuning': tuning,
            'gqa_decode': gqa_decode, 'triton_gemv': gemv.MAX_ROWS > 0,
            'fuse_projections': fuse_projections, 'params': params,
            'bandwidth_TBps': round(bandwidth / 1e12, 2), 'weight_floor_s': round(floor, 3),
            'tokens': n, 'cfg_scale': cfg_scale, 'runs': rows}


def bench_jacobi(sampler, prompts, uncond, cfg_scale, plain_seconds, n, windows):
    """Speculative Jacobi decoding at batch 1 beside the plain sampler's ``plain_seconds``
    per image: passes per image, seconds per pass and per image. Random weights give
    near-uniform distributions, so how many drafts are kept here says nothing about a
    trained model; the time per pass (window query positions) is what carries over."""
    print('SJD on random weights: passes per image are not meaningful (near-uniform '
          'distributions); compare the time per pass', flush=True)
    rows = [dict(sampler='plain', passes_per_image=n, seconds_per_pass=plain_seconds / n,
                 seconds_per_image=plain_seconds)]
    for window in windows:
        passes = []

        def run():
            sampler.generate(prompts, uncond, cfg_scale=cfg_scale, seed=len(passes),
                             jacobi_window=window)
            passes.append(sampler.last_passes)
        seconds = timed(run, iters=3, warmup=2)
        per_image = statistics.fmean(passes[-3:])
        rows.append(dict(sampler=f'SJD W={window}', passes_per_image=per_image,
                         seconds_per_pass=seconds / per_image, seconds_per_image=seconds))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def graph_us(fn, inputs, reps=20):
    """Microseconds per ``fn(input)``, the inputs in turn, replayed as one CUDA graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up (compiles) off the capture
        for x in inputs:
            fn(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for x in inputs:
            fn(x)
    return timed(graph.replay, iters=reps, warmup=3) * 1e6 / len(inputs)


def bench_gemv(rows_list):
    """The decode step's weight products at the Qwen2.5-3B shapes: `gemv_rows` (the Triton
    kernel) against torch (cuBLAS, and SiLU * up as its own kernel), weights rotated past L2."""
    import math
    import torch.nn.functional as F
    from unimm.inference.gemv import gemv_rows
    device, bandwidth = torch.device('cuda'), copy_bandwidth(torch.device('cuda'))
    hidden, inter = QWEN25_3B['hidden_size'], QWEN25_3B['intermediate_size']
    shapes = {'qkv + bias': (2560, hidden, True, False), 'o': (hidden, hidden, False, False),
              'gate/up + SiLU * up': (2 * inter, hidden, False, True),
              'down': (hidden, inter, False, False)}
    rows_out = []
    for name, (n, k, has_bias, swiglu) in shapes.items():
        copies = max(2, math.ceil(4e8 / (n * k * 2)))  # 400 MB of weights: no L2 reuse
        weights = [torch.randn(n, k, device=device, dtype=torch.bfloat16) / k ** 0.5
                   for _ in range(copies)]
        bias = torch.randn(n, device=device, dtype=torch.bfloat16) if has_bias else None
        for rows in rows_list:
            x = torch.randn(rows, k, device=device, dtype=torch.bfloat16)

            def torch_path(w):
                y = F.linear(x, w, bias)
                if swiglu:
                    gate, up = y.chunk(2, -1)
                    y = F.silu(gate) * up
                return y
            ours = graph_us(lambda w: gemv_rows(x, w, bias, swiglu), weights)
            ref = graph_us(torch_path, weights)
            floor = n * k * 2 / bandwidth * 1e6
            rows_out.append(dict(shape=name, rows=rows, gemv_rows_us=round(ours, 2),
                                 torch_us=round(ref, 2), floor_us=round(floor, 2),
                                 gemv_rows_TBps=round(n * k * 2 / ours / 1e6, 2),
                                 speedup=round(ref / ours, 3)))
            print(json.dumps(rows_out[-1]), flush=True)
    return {'device': torch.cuda.get_device_name(), 'bandwidth_TBps': round(bandwidth / 1e12, 2),
            'runs': rows_out}


VICUNA_7B = dict(model_type='llama', hidden_size=4096, intermediate_size=11008,
                 num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                 vocab_size=32000, max_position_embeddings=4096, tie_word_embeddings=False)
OFFLOAD = {
    'none': {},
    # DeepSpeedCPUAdam (JIT-built on first use, ~45 s): the fast way to fit 7B on 80 GB
    'cpu_adam': {'optimizer': {'params': {'torch_adam': False}},
                 'zero_optimization': {'offload_optimizer': {'device': 'cpu',
                                                             'pin_memory': True}}},
    # torch's AdamW on the CPU (no build; slower optimizer step)
    # (unpinned: fp32 master + Adam states of 7B are ~80 GB of host memory)
    'cpu_torch': {'zero_force_ds_cpu_optimizer': False,
                  'zero_optimization': {'offload_optimizer': {'device': 'cpu',
                                                              'pin_memory': False}}},
}


def bench_llava_step(batch, seq, zero, offload, steps=5):
    """Phase-2 LLaVA training steps through UnderstandingMLLM and the real Runner
    (DeepSpeed ZeRO, bf16, gradient checkpointing): Vicuna-7B-shaped LLaMA and the
    paper-shaped SemHiTok (random weights), 256 image tokens per sample."""
    import tempfile
    from mmengine.config import Config
    from unimm.engine.runner import Runner, move_batch
    from unimm.apis.tiny_lm import train_bpe_tokenizer
    from unimm.models.mllm.conversation import IMAGE_TOKEN_INDEX
    with tempfile.TemporaryDirectory() as tmp:
        train_bpe_tokenizer(['a photo of a cat'], vocab_size=300).save_pretrained(tmp)
        cfg = Config(dict(
            model=dict(type='UnderstandingMLLM', llm=VICUNA_7B, tokenizer=tmp,
                       vision=dict(type='TokenizerFeatures', tokenizer=semhitok_paper_config()),
                       train_llm=True, gradient_checkpointing=True),
            train_dataloader=dict(batch_size=batch, dataset=dict(
                type='ShapesLLaVADataset', tokenizer=tmp, length=1, resolution=256,
                num_image_tokens=256)),
            optim_wrapper=dict(optimizer=dict(type='AdamW', lr=2e-5, weight_decay=0.0),
                               clip_grad=1.0),
            param_scheduler=dict(type='Constant', warmup_steps=0),
            train_cfg=dict(max_steps=steps + 2), checkpoint=dict(interval=10**9),
            deepspeed=dict(zero_stage=zero, precision='bf16', config=OFFLOAD[offload])))
        runner = Runner(cfg, os.path.join(tmp, 'work'))
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(3, VICUNA_7B['vocab_size'], (batch, seq), generator=gen)
        ids[:, 1:257] = IMAGE_TOKEN_INDEX
        data = move_batch({'input_ids': ids, 'labels': ids.masked_fill(ids < 0, -100),
                           'attention_mask': torch.ones_like(ids),
                           'images': torch.rand(batch, 3, 256, 256, generator=gen) * 2 - 1},
                          runner.device, runner.dtype)
        times = []
        for _ in range(steps + 2):  # two warm-up steps
            torch.cuda.synchronize()
            start = time.perf_counter()
            runner._micro_step(data)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        step = sorted(times[2:])[len(times[2:]) // 2]
        llm = runner.engine.module.llm.config
        params = sum(getattr(p, 'ds_numel', p.numel())  # ZeRO-3 keeps the full size aside
                     for p in runner.engine.module.llm.parameters())
        tokens = batch * seq
        flops = 6 * tokens * params + 12 * llm.num_hidden_layers * tokens * seq * llm.hidden_size
    return {'device': torch.cuda.get_device_name(), 'zero_stage': zero, 'offload': offload,
            'batch': batch, 'seq': seq, 'llm_params': params, 'step_s': round(step, 3),
            'tokens_per_s': round(tokens / step),
            'mfu_vs_795tflops': round(flops / step / 795e12, 3),
            'max_mem_GB': round(torch.cuda.max_memory_allocated() / 1e9, 1)}


# ------------------------------------------------------------------ recipe twins
# A recipe's twin: the same config with every pretrained folder replaced by random weights
# of the same architecture and the data by the shapes world (map-style, so 1 and N ranks
# see the same global batches). 'paper' keeps the recipe's shapes (timing, `train`);
# 'small' and 'tiny' (unimm.apis.shrink.SCALES) shrink the networks (multi-GPU trace
# checks; the CPU dry run).
PAPER_LLMS = {'vicuna-7b': VICUNA_7B, 'qwen2.5-3b': QWEN25_3B}
PAPER_VOCAB = dict(num_semantic=16384, sub_codes=12, num_image_tokens=256)


def model_kind(model_cfg):
    """'understanding', 'generation' or 'tokenizer' (image batches) for a model config."""
    return {'UnderstandingMLLM': 'understanding', 'GenerationMLLM': 'generation',
            'UnifiedMLLM': 'unified'}.get(model_cfg['type'], 'tokenizer')


def random_lpips_weights(folder):
    """A randomly initialised LPIPS-VGG16 weights file in the layout LPIPSLoss loads (the
    real one is a converted download; timing and traces do not need its values)."""
    import warnings
    import lpips
    from safetensors.torch import save_file
    path = os.path.join(folder, 'lpips_vgg_random.safetensors')
    if not os.path.isfile(path):
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            net = lpips.LPIPS(net='vgg', version='0.1', pretrained=False, pnet_rand=True,
                              verbose=False)
        state = {k: v for k, v in net.state_dict().items() if k.startswith('net.')}
        state.update({f'lin{k}.model.1.weight': lin.model[1].weight.detach()
                      for k, lin in enumerate(net.lins)})
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


def paper_llm(llm):
    """The architecture dict of an LLM named by a recipe: its folder's config.json when
    present, else the paper's shape for the names this project's recipes use."""
    if isinstance(llm, dict):
        return dict(llm)
    if os.path.isfile(os.path.join(str(llm), 'config.json')):
        from transformers import AutoConfig
        full = AutoConfig.from_pretrained(llm).to_dict()
        keys = ('model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
                'num_attention_heads', 'num_key_value_heads', 'vocab_size',
                'max_position_embeddings', 'tie_word_embeddings', 'rope_theta')
        return {k: full[k] for k in keys if k in full}
    for name, arch in PAPER_LLMS.items():
        if name in os.path.basename(str(llm).rstrip('/')).lower():
            return dict(arch)
    from unimm.utils.build import ConfigError
    raise ConfigError(f'model.llm: no folder at {llm!r} and no known paper shape for its name '
                      f'({sorted(PAPER_LLMS)}); put its config.json there')


def twin_llm(llm, folder, scale):
    """(llm, tokenizer folder) of the twin: the paper architecture with a small BPE
    tokenizer, or a tiny/small random LM folder of the same family (tokenizer inside)."""
    from unimm.apis.shrink import SCALES
    from unimm.apis.tiny_lm import make_tiny_lm, shapes_corpus, train_bpe_tokenizer
    arch = paper_llm(llm)
    if scale == 'paper':
        tok = os.path.join(folder, 'tokenizer')
        if not os.path.isdir(tok):
            train_bpe_tokenizer(list(shapes_corpus(num_scenes=200)),
                                vocab_size=1024).save_pretrained(tok)
        return arch, tok
    s = dict(SCALES[scale]['llm'])
    family = 'qwen2' if arch['model_type'] == 'qwen2' else 'llama'
    kv = max(1, s['num_attention_heads'] // 4) if family == 'qwen2' else None
    out = os.path.join(folder, f'llm_{family}')
    if not os.path.isfile(os.path.join(out, 'config.json')):
        make_tiny_lm(out, arch=family, num_key_value_heads=kv, max_position_embeddings=4096,
                     extra_texts=['A chat between a curious user and an artificial '
                                  'intelligence assistant.'], **s)
    return out, out


def random_weights(s, lpips_file=None):
    """The twin's own rules for ``unimm.apis.shrink.shrink`` at sizes ``s`` (None: the
    paper's): a SigLIP tower from a folder or the teacher becomes a random one of the
    scale's shape; SemHiTok starts from no previous stage, its stage-1 target a frozen
    tower (itself if frozen, else a random one of the same shape); LPIPS loads
    ``lpips_file``."""
    from unimm.apis.shrink import siglip_config
    arch = dict(SIGLIP_L16_256) if s is None else siglip_config(s)

    def random_encoder(node):
        return dict(node, init='random', pretrained=None, vision_config=dict(arch))

    def semhitok(node):
        node = dict(node, init_from=None, init_exclude=[],
                    semantic_encoder=random_encoder(node['semantic_encoder']))
        if node.get('stage', 'spc') == 'spc' and not node.get('teacher'):
            # stage 1's target: a frozen encoder serves as its own teacher (one forward, as
            # in a recipe whose frozen encoder loads the teacher folder); a trained one gets
            # a frozen random tower of the same architecture
            node['teacher'] = dict(node['semantic_encoder'], frozen=True) \
                if node.get('train_semantic_encoder') else 'semantic_encoder'
        return node

    rules = {'SemanticEncoder': lambda n: random_encoder(n) if (
                 n.get('init', 'teacher') == 'teacher' or n.get('pretrained')) else n,
             'SemHiTok': semhitok}
    if lpips_file:
        rules['LPIPSLoss'] = lambda n: dict(n, weights=lpips_file)
    return rules


def twin_config(cfg, folder, scale='paper'):
    """The twin of recipe ``cfg`` (an mmengine Config) as a new Config; assets it needs
    (random LPIPS weights, tokenizers, LM and tokenizer export folders) go to ``folder``."""
    from mmengine.config import Config
    from unimm.apis.shrink import SCALES, num_tokens, shrink
    from unimm.engine.config import check_config
    from unimm.registry import MODELS
    os.makedirs(folder, exist_ok=True)
    d = cfg.to_dict()
    for key in ('test_cfg', 'val_dataloader', 'test_dataloader', 'load_from', 'work_dir'):
        d.pop(key, None)
    s = SCALES.get(scale)
    rules = random_weights(s, random_lpips_weights(folder))
    model = shrink(d['model'], s, rules)
    kind = model_kind(model)
    image = s['image'] if s else 256
    grid = num_tokens(s) if s else 256
    loader = dict(d['train_dataloader'])
    loader.pop('dataset')
    if s:
        loader['num_workers'] = min(int(loader.get('num_workers', 0)), s['num_workers'])
    samples = s['samples'] if s else 20000
    # the frozen tokenizer of the MLLM twins: the paper's enhance-stage SemHiTok
    # (registry_configs/enhance_decoder_vitl.py's model, without LPIPS) at the twin's scale
    stage3 = shrink(semhitok_paper_config(), s, rules)
    if kind in ('understanding', 'generation', 'unified'):
        if kind == 'unified':
            raise SystemExit('twins of UnifiedMLLM recipes are not supported yet')
        model['llm'], tok = twin_llm(model['llm'], folder, scale)
        model['tokenizer'] = tok
    if kind == 'understanding':
        model['projector_from'] = None
        vision = model['vision']
        if vision.get('type') == 'TokenizerFeatures' and isinstance(vision['tokenizer'], str):
            model['vision'] = dict(vision, tokenizer=stage3)
        dataset = dict(type='ShapesLLaVADataset', tokenizer=tok, kind='vqa', resolution=image,
                       length=samples, template=model.get('template', 'vicuna_v1'),
                       num_image_tokens=grid, max_length=s['max_length'] if s else 2048)
    elif kind == 'generation':
        if s is None:  # pre-tokenised shapes: `train` feeds synthetic visual ids
            model.update(image_tokenizer=None, **PAPER_VOCAB)
            dataset = dict(type='ShapesCaptionDataset', resolution=image, length=samples)
        else:  # a random tokenizer export: images of the shapes world tokenised on the fly
            export = os.path.join(folder, 'image_tokenizer')
            if not os.path.isfile(os.path.join(export, 'config.json')):
                torch.manual_seed(0)
                tok_cfg = dict(stage3, pixel_loss=dict(
                    type='PixelReconstructionLoss', l1_weight=1.0, perceptual_weight=0.0,
                    lpips=None))
                MODELS.build(tok_cfg).save_pretrained(export)
            for key in PAPER_VOCAB:
                model.pop(key, None)
            model['image_tokenizer'] = export
            dataset = dict(type='ShapesCaptionDataset', resolution=image, length=samples)
    else:
        dataset = dict(type='ShapesCaptionDataset', resolution=image, length=samples)
        if d.get('discriminator'):
            d['discriminator'] = shrink(d['discriminator'], s, rules)
    d['model'] = model
    d['train_dataloader'] = dict(loader, dataset=dataset)
    twin = Config(d)
    check_config(twin)
    return twin


def write_twin(args):
    """`twin`: write the twin config (and its assets) for tools/train.py."""
    from unimm.engine.config import load_config
    cfg = load_config(args.config, args.cfg_options)
    if args.scale == 'paper' and model_kind(cfg.model) == 'generation':
        raise SystemExit('a paper-scale generation twin has no image tokenizer to train '
                         'with: use --scale small|tiny (or `train`, which feeds visual ids)')
    twin = twin_config(cfg, args.out, args.scale)
    path = os.path.join(args.out, 'config.py')
    twin.dump(path)

    return {'config': path, 'scale': args.scale}


# ------------------------------------------------------------------ training throughput
def synthetic_batch(kind, module, batch, seq, seed=0):
    """A host batch of the recipe's shapes: images, or token rows of ``seq`` tokens."""
    from unimm.models.mllm.conversation import IMAGE_TOKEN_INDEX
    gen = torch.Generator().manual_seed(seed)
    if kind == 'tokenizer':
        size = getattr(module, 'image_size', 256)
        return {'image': torch.rand(batch, 3, size, size, generator=gen) * 2 - 1}
    if kind == 'understanding':
        n = module.vision.num_tokens
        size = module.vision.image_size
        vocab = module.llm.config.vocab_size
        ids = torch.randint(3, vocab, (batch, seq), generator=gen)
        ids[:, 1:1 + n] = IMAGE_TOKEN_INDEX
        return {'input_ids': ids, 'labels': ids.masked_fill(ids < 0, -100),
                'attention_mask': torch.ones_like(ids),
                'images': torch.rand(batch, 3, size, size, generator=gen) * 2 - 1}
    # generation: pre-tokenised visual ids and captions long enough to fill ``seq``
    letters = 'abcdefghijklmnopqrstuvwxyz'
    words = [''.join(letters[int(i)] for i in torch.randint(0, 26, (5,), generator=gen))
             for _ in range(4 * seq)]
    text = ' '.join(words)
    return {'visual_ids': torch.randint(0, module.num_visual, (batch, module.num_image_tokens),
                                        generator=gen),
            'text': [text] * batch}


class _OneBatch(torch.utils.data.Dataset):
    """The benchmark batch's samples (the runner wants a dataset; `train` feeds batches)."""

    def __init__(self, batch):
        self.batch = batch
        self.n = len(next(iter(batch.values())))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.batch.items()}


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def time_steps(step, device, warmup, steps):
    """Median seconds of ``step()`` after ``warmup`` calls."""
    times = []
    for k in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    timed_ = sorted(times[warmup:])
    return timed_[len(timed_) // 2]


def llm_step_flops(llm, tokens, seq, params):
    """Model FLOPs of one training step as the plain-PyTorch MFU anchor counts them:
    6 * tokens * params + attention 12 * layers * tokens * seq * hidden."""
    cfg = llm.config
    return 6 * tokens * params + 12 * cfg.num_hidden_layers * tokens * seq * cfg.hidden_size


def raw_tokenizer_step(model_cfg, disc_cfg, images, device, dtype):
    """The stage's networks in plain PyTorch (no quantizers, fusion, runner or DeepSpeed):
    frozen semantic encoder + a linear map to the decoder's semantic channels, the pixel
    encoder (trained in stage 2, frozen in 3), the pixel decoder, L1/L2 + LPIPS +
    hinge PatchGAN with the generator and discriminator stepped apart; weights and AdamW
    in the compute dtype (as anchor_train_mfu.py). Returns a step function."""
    from torch import nn
    from unimm.registry import MODELS
    stage = model_cfg['stage']
    loss_cfg = model_cfg['pixel_loss']
    with torch.device(device):
        sem = MODELS.build(model_cfg['semantic_encoder'])
        enc = MODELS.build(model_cfg['pixel_encoder'])
        dec = MODELS.build(model_cfg['pixel_decoder'])
        proj = nn.Linear(sem.out_dim, dec.embed.in_features - enc.out_dim)
        disc = MODELS.build(disc_cfg)
        lpips = MODELS.build(loss_cfg['lpips']) \
            if float(loss_cfg.get('perceptual_weight', 0)) > 0 else None
    nets = [sem, enc, dec, proj, disc] + ([lpips] if lpips is not None else [])
    for net in nets:
        net.to(device=device, dtype=dtype)
    sem.requires_grad_(False)
    proj.requires_grad_(False)
    enc.requires_grad_(stage == 'sghc')
    trained = [p for m in (enc, dec) for p in m.parameters() if p.requires_grad]
    fused = {'fused': True} if device.type == 'cuda' else {}
    opt_g = torch.optim.AdamW(trained, lr=1e-4, **fused)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=1e-4, **fused)
    l1, l2 = float(loss_cfg.get('l1_weight', 1.0)), float(loss_cfg.get('l2_weight', 0.0))
    pw, adv = float(loss_cfg.get('perceptual_weight', 0.0)), float(model_cfg.get('adv_weight', 0.1))
    x = images.to(device=device, dtype=dtype)

    def step():
        with torch.no_grad():
            s = proj(sem(x))
        with torch.set_grad_enabled(stage == 'sghc'):
            t = enc(x)
        recon = dec(torch.cat([s, t.to(s.dtype)], dim=-1))
        diff = recon.float() - x.float()
        loss = l1 * diff.abs().mean() + l2 * diff.pow(2).mean()
        if lpips is not None:
            loss = loss + pw * lpips(recon, x).float()
        disc.requires_grad_(False)
        loss = loss - adv * disc(images=recon).float().mean()
        disc.requires_grad_(True)
        loss.backward()
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        d_loss = (torch.relu(1 - disc(images=x).float()).mean()
                  + torch.relu(1 + disc(images=recon.detach()).float()).mean())
        d_loss.backward()
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
    return step


def bench_train(args):
    """`train`: training steps of a recipe's twin (random weights, synthetic batches at the
    recipe's shapes) through the real Runner / DeepSpeed path (ZeRO stage and precision
    from the config); img/s for tokenizer stages (with the raw stack in the same process),
    tokens/s and MFU for LLM stages. Works under torchrun (global throughput)."""
    import tempfile
    from unimm.engine.compile import with_backend
    from unimm.engine.config import load_config
    from unimm.engine.runner import Runner, init_distributed
    cfg = load_config(args.config, args.cfg_options)
    scale = 'tiny' if args.dry_run else args.scale
    steps, warmup = (2, 0) if args.dry_run else (args.steps, args.warmup)
    device = init_distributed()
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    with tempfile.TemporaryDirectory() as tmp:
        twin = twin_config(cfg, tmp, scale)
        kind = model_kind(twin.model)
        batch = args.batch or int(twin.train_dataloader.batch_size)
        seq = args.seq or {'understanding': 2048, 'generation': 512}.get(kind, 0)
        if args.dry_run:
            seq = min(seq, 64 if kind == 'understanding' else 32)
        twin.train_dataloader.batch_size = batch
        if args.accum:
            twin.optim_wrapper.accumulative_counts = args.accum
        twin.train_cfg = dict(max_steps=warmup + steps + 1, log_interval=10**9)
        twin.checkpoint = dict(interval=10**9)
        twin.log_cfg = dict(tensorboard=False)
        if args.dry_run:  # the CPU: fp32, and compile's capture without inductor's build
            twin.deepspeed = dict(twin.get('deepspeed') or {}, precision='fp32')
            twin.compile = with_backend(twin.get('compile'), 'eager')
        if twin.get('discriminator'):
            twin.discriminator.start_step = 0  # the GAN is on in every timed step
        dummy = {'x': torch.zeros(1)}
        runner = Runner(twin, os.path.join(tmp, 'work'), dataset=_OneBatch(dummy),
                        build_device=device if args.build_on == 'device' else None)
        module = runner.engine.module
        if kind == 'generation':  # one sample per row of exactly ``seq`` tokens:
            # [bos] caption <boi> visual tokens <eoi>, the caption cut to fit
            if seq < module.num_image_tokens + 4:
                raise SystemExit(f'--seq {seq}: a generation row needs more than the '
                                 f'{module.num_image_tokens} visual tokens + 3 specials')
            module.pack_length = None
            module.max_caption_tokens = seq - module.num_image_tokens - 3
        data = synthetic_batch(kind, module, batch, seq, seed=rank)
        on_device = {k: v.to(device) if torch.is_tensor(v) else v for k, v in data.items()}

        def step():  # one optimizer step: ``accum`` micro-steps; the step advances as in
            for _ in range(runner.accum):  # training (what a model's forward sees)
                if runner.train_step(on_device) is None:
                    raise RuntimeError('non-finite loss in a benchmark step')
            runner.state['global_step'] += 1
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        seconds = time_steps(step, device, warmup, steps)
        peak = torch.cuda.max_memory_allocated() / 1e9 if device.type == 'cuda' else None
        slowest = torch.tensor(seconds, device=device, dtype=torch.float64)
        torch.distributed.all_reduce(slowest, op=torch.distributed.ReduceOp.MAX)
        seconds = slowest.item()
        params = sum(getattr(p, 'ds_numel', p.numel()) for p in module.parameters())
        trainable = sum(getattr(p, 'ds_numel', p.numel()) for p in module.parameters()
                        if p.requires_grad)
        out = {'config': args.config, 'twin_scale': scale, 'dry_run': bool(args.dry_run),
               'device': torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu',
               'world_size': world, 'zero_stage': runner.zero_stage,
               'compiled': runner.compiled,
               'precision': runner.precision, 'batch_per_rank': batch,
               'accumulation': runner.accum, 'global_batch': runner.global_batch_size,
               'steps_timed': steps,
               'step_s': round(seconds, 4), 'params': params, 'trainable_params': trainable,
               'peak_mem_GB_rank0': None if peak is None else round(peak, 1)}
        if kind == 'tokenizer':
            out['img_s'] = round(runner.global_batch_size / seconds, 1)
            if twin.model.get('stage') in ('sghc', 'enhance') and twin.get('discriminator') \
                    and not args.no_raw:
                if world == 1:
                    raw = raw_tokenizer_step(twin.model, twin.discriminator, data['image'],
                                             device, runner.dtype)
                    raw_s = time_steps(raw, device, warmup, steps)
                    out.update(raw_img_s=round(batch / raw_s, 1), raw_step_s=round(raw_s, 4),
                               vs_raw=round(out['img_s'] * raw_s / batch, 3))
                else:
                    out['raw_img_s'] = 'measured on one rank only (run without torchrun)'
        else:
            llm = module.llm
            llm_params = sum(getattr(p, 'ds_numel', p.numel()) for p in llm.parameters())
            if kind == 'generation':
                ids, _, _ = module.build_inputs(module.caption_prompt_ids(data['text']),
                                                data['visual_ids'])
                rows, width = ids.shape
            else:
                rows, width = data['input_ids'].shape
            tokens = rows * width * runner.accum
            flops = llm_step_flops(llm, tokens, width, llm_params)
            out.update(seq=width, tokens_per_rank=tokens, llm_params=llm_params,
                       tokens_s=round(tokens * world / seconds),
                       tflops_per_gpu=round(flops / seconds / 1e12, 1),
                       mfu_vs_795tflops=round(flops / seconds / PEAK_FLOPS, 3),
                       gradient_checkpointing=bool(twin.model.get('gradient_checkpointing')))
    return out if rank == 0 else None


PEAK_FLOPS = 795e12  # dense bf16 matmul of an H100 / H200, as measured on them


# ------------------------------------------------------------------ data loading
# what a GPU consumes per second (the anchors in docs/performance.md): the data path must
# beat these
GPU_NEEDS = {'tokenizer': ('img/s, raw stage-2 stack, one H100', 319),
             'generation': ('samples/s at 16.5k tok/s and ~379 tokens a sample, one H100',
                            44),
             'understanding': ('samples/s at 7.0k tok/s and 2048 tokens, one H200', 3.4)}


def natural_images(count, size, seed=0):
    """``count`` distinct natural-looking RGB images (random crops and flips of
    skimage's photos when installed, else shapes-world scenes)."""
    from PIL import Image
    import numpy as np
    rng = np.random.default_rng(seed)
    try:
        from skimage import data as skdata
        photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    except ImportError:
        from unimm.datasets.shapes import ShapesWorld
        world = ShapesWorld(seed, 512)
        photos = [np.asarray(world.image(i)) for i in range(4)]
    for k in range(count):
        photo = photos[k % len(photos)]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size))
        yield crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def jpeg_bytes(img, quality=90):
    import io
    buf = io.BytesIO()
    img.save(buf, format='JPEG', quality=quality)
    return buf.getvalue()


def bench_loader(args):
    """`loader`: samples/s through the recipe's train_dataloader (its batch size, workers
    and transform) on webdataset shards written to a temp dir: JPEG image-text shards, or
    pre-tokenised id shards for PretokenizedT2IShards recipes."""
    import tempfile
    from unimm.datasets.image_datasets import write_shards
    from unimm.datasets.t2i import write_token_shards
    from unimm.engine.config import load_config
    from unimm.engine.runner import epoch_loader
    from unimm.registry import DATASETS
    cfg = load_config(args.config, args.cfg_options)
    opts = dict(cfg.train_dataloader)
    ds_cfg = dict(opts.pop('dataset'))
    batch = args.batch or int(opts.pop('batch_size'))
    opts.pop('batch_size', None)
    if args.num_workers is not None:
        opts['num_workers'] = args.num_workers
    opts.pop('group_by_length', None)
    kind = model_kind(cfg.model)
    n = args.samples or batch * (args.batches + 4)
    # at least two shards per reader (a reader then never re-reads another's shard)
    readers = max(1, int(opts.get('num_workers', 0)))
    shard_size = args.shard_size or max(1, min(1000, n // (2 * readers)))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if ds_cfg['type'] == 'PretokenizedT2IShards':
            gen = torch.Generator().manual_seed(0)
            write_token_shards(((torch.randint(0, 196608, (256,), generator=gen).tolist(),
                                 f'a photo of thing {k}', str(k)) for k in range(n)),
                               tmp, shard_size=shard_size)
            dataset = DATASETS.build(dict(type='PretokenizedT2IShards', urls=tmp,
                                          shuffle_buffer=ds_cfg.get('shuffle_buffer', 0)))
            what = 'pre-tokenised ids (256 int32) + caption'
        else:
            size = int((ds_cfg.get('transform') or {}).get('size', ds_cfg.get('image_size', 256)))
            write_shards(({'jpg': jpeg_bytes(img), 'txt': f'a photo of thing {k}'}
                          for k, img in enumerate(natural_images(n, args.source_size))),
                         os.path.join(tmp, 'shard-%06d.tar'), maxcount=shard_size)
            transform = ds_cfg.get('transform') or dict(type='ImageTransform', size=size,
                                                        crop='random', random_flip=True)
            dataset = DATASETS.build(dict(type='WebDatasetShards',
                                          urls=os.path.join(tmp, 'shard-{%06d..%06d}.tar' % (
                                              0, (n - 1) // shard_size)),
                                          shuffle_buffer=ds_cfg.get('shuffle_buffer', 0),
                                          transform=transform))
            what = f'{args.source_size} px JPEG (quality 90) + caption -> {transform}'
        written = time.perf_counter() - start
        it = epoch_loader(dataset, opts, batch, epoch=0, seed=0)
        for _ in range(2):  # worker start-up and the first shards
            next(it)
        count, start = 0, time.perf_counter()
        for _, b in zip(range(args.batches), it):
            count += len(next(v for v in b.values() if torch.is_tensor(v) or isinstance(v, list)))
        seconds = time.perf_counter() - start
    need = GPU_NEEDS.get(kind)
    return {'config': args.config, 'dataset': ds_cfg['type'], 'samples': what,
            'shard_size': shard_size, 'batch': batch, 'num_workers': opts.get('num_workers', 0),
            'cpu_cores': os.cpu_count(), 'batches_timed': args.batches,
            'samples_per_s': round(count / seconds, 1), 'shards_written_s': round(written, 1),
            'gpu_consumes_per_s': None if need is None else {'what': need[0], 'value': need[1]}}


BENCHMARKS = {
    'train': bench_train,
    'loader': bench_loader,
    'twin': write_twin,
    'tokenizer': lambda args: bench_tokenizer(args.batch or 64),
    'generate': lambda args: bench_generate([args.batch] if args.batch else [1, 8, 32],
                                            head=args.head, tuning=args.tuning,
                                            gqa_decode=args.attention == 'gqa_decode',
                                            fuse_projections=not args.no_fuse,
                                            jacobi_windows=args.jacobi_window or (),
                                            profile=args.profile),
    'gemv': lambda args: bench_gemv([args.batch] if args.batch else [1, 2, 4]),
    'llava_step': lambda args: bench_llava_step(args.batch or 8, args.seq or 2048, args.zero,
                                                args.offload),
}


GPU_ONLY = {'tokenizer', 'generate', 'gemv', 'llava_step'}


def run_benchmark(args):
    """Run benchmark ``args.what`` with the tool's parsed ``args``; its results on rank 0
    (printed, and written to ``args.json`` if set), None elsewhere."""
    needs_gpu = args.what in GPU_ONLY or (args.what == 'train' and not args.dry_run)
    if needs_gpu and not torch.cuda.is_available():
        raise SystemExit(f'{args.what} needs a GPU' + (' (or --dry-run)' if args.what == 'train'
                                                       else ''))
    if getattr(args, 'no_gemv', False):
        import unimm.inference.gemv
        unimm.inference.gemv.MAX_ROWS = 0
    results = BENCHMARKS[args.what](args)
    if results is None:  # not rank 0
        return None
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return results
