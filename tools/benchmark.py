"""Benchmarks, run on a GPU: python tools/benchmark.py WHAT [--batch N ...] [--json OUT].

tokenizer: SemHiTok encode / decode images/s at the paper's shapes (SigLIP-L/16 semantic
encoder, ViT-B pixel encoder, K = 16384, m = 12, ViT-L enhance decoder; random weights,
bf16) next to the raw ViT stack of the same shapes (no quantization, no fusion) measured
in the same process, plus the SGHC lookup against a flat K*m search.

generate: text-to-image decoding with the fast CFG sampler (unimm.inference.CFGSampler) on
a Qwen2.5-3B-shaped GenerationMLLM with the K*m = 196,608 visual vocabulary (random
weights, bf16): seconds per 256-token image batch at batch 1 / 8 / 32 (cond + uncond
rows), against the weight-read floor measured on the same GPU; run
../shared/bench/anchor_*_decode.py in the same device call for the anchors.

llava_step [--zero 3] [--offload none|cpu_adam|cpu_torch] [--batch 8] [--seq 2048]: phase-2
LLaVA steps (projector + Vicuna-7B-shaped LLaMA, random weights) through UnderstandingMLLM
and the real Runner: DeepSpeed ZeRO, bf16, gradient checkpointing; tokens/s and MFU
(model FLOPs of the LLM against 795 TFLOP/s, as ../shared/bench/anchor_train_mfu.py)."""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

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
        pixel_decoder=dict(type='ViTDecoder', image_size=256, patch_size=16, preset='large',
                           in_dim=64),
        # SemHiTok validates its pixel stage up front; the loss is not run here
        pixel_loss=dict(type='PixelReconstructionLoss', l1_weight=1.0, l2_weight=1.0,
                        perceptual_weight=0.0, lpips=None))


def semhitok_paper_shape(device, dtype):
    from unimm.registry import MODELS
    model = MODELS.build(semhitok_paper_config())
    return model.to(device=device, dtype=dtype).eval()


def bench_tokenizer(batch):
    device, dtype = torch.device('cuda'), torch.bfloat16
    model = semhitok_paper_shape(device, dtype)
    x = torch.rand(batch, 3, 256, 256, device=device, dtype=dtype) * 2 - 1
    with torch.inference_mode():
        ids = model.encode(x)
        t_encode = timed(lambda: model.encode(x))
        t_decode = timed(lambda: model.decode(ids))
        # the raw stack: the same networks, no projection, quantizers or fusion
        enc_s, enc_p = model.semantic_encoder.model, model.pixel_encoder
        codes = torch.randn(batch, 256, 64, device=device, dtype=dtype)
        t_raw_encode = timed(lambda: (enc_s(pixel_values=x), enc_p(x)))
        t_raw_decode = timed(lambda: model.pixel_decoder(codes))
        # SGHC quantization alone, at the encode's token count
        z = enc_p(x)
        sem_ids = ids // 12
        t_sghc = timed(lambda: model.pixel_quantizer(z, semantic_ids=sem_ids))
        # hierarchical vs flat search at 16,384 tokens, d = 32
        table = model.pixel_quantizer.codes(torch.arange(16384 * 12, device=device)).float()
        zf = torch.randn(16384, 32, device=device)
        si = torch.randint(0, 16384, (16384,), device=device)
        t_flat = timed(lambda: torch.cdist(zf, table).argmin(-1), iters=5, warmup=2)
        t_hier = timed(lambda: model.pixel_quantizer(zf.view(1, -1, 32).to(dtype),
                                                     semantic_ids=si.view(1, -1)))
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
    from unimm.models.mllm.tiny_lm import train_bpe_tokenizer
    from unimm.registry import MODELS
    train_bpe_tokenizer(['a photo of a cat'], vocab_size=300).save_pretrained(tokenizer_dir)
    with torch.device(device):
        model = MODELS.build(dict(type='GenerationMLLM', llm=QWEN25_3B, tokenizer=tokenizer_dir,
                                  num_semantic=16384, sub_codes=12, num_image_tokens=256,
                                  visual_head=dict(type=head)))
    return model.to(dtype).eval()


def bench_generate(batches, head='FlatVisualHead', prompt_len=32, cfg_scale=4.0):
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
    rows = []
    for batch in batches:
        sampler = CFGSampler(model, max_batch=batch, max_prompt_len=prompt_len + 1)
        prompts = [torch.randint(0, model.text_vocab, (prompt_len,), generator=gen).tolist()
                   + [model.boi_id] for _ in range(batch)]
        uncond = model.prompt_ids([None] * batch)
        run = lambda: sampler.generate(prompts, uncond, cfg_scale=cfg_scale, seed=0)  # noqa: E731
        seconds = timed(run, iters=3, warmup=2)  # warm-up compiles and captures the graph
        rows.append(dict(batch=batch, seconds=round(seconds, 3),
                         img_tokens_per_s=round(n * batch / seconds, 1),
                         images_per_s=round(batch / seconds, 2),
                         ratio_to_floor=round(seconds / floor, 2)))
        print(json.dumps(rows[-1]), flush=True)
    return {'device': torch.cuda.get_device_name(), 'head': head, 'params': params,
            'bandwidth_TBps': round(bandwidth / 1e12, 2), 'weight_floor_s': round(floor, 3),
            'tokens': n, 'cfg_scale': cfg_scale, 'runs': rows}


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
    from unimm.models.mllm.tiny_lm import train_bpe_tokenizer
    from unimm.datasets.conversation import IMAGE_TOKEN_INDEX
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


BENCHMARKS = {
    'tokenizer': lambda args: bench_tokenizer(args.batch or 64),
    'generate': lambda args: bench_generate([args.batch] if args.batch else [1, 8, 32],
                                            head=args.head),
    'llava_step': lambda args: bench_llava_step(args.batch or 8, args.seq, args.zero,
                                                args.offload),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('what', choices=sorted(BENCHMARKS))
    p.add_argument('--batch', type=int, help='default: 64 (tokenizer), 1, 8 and 32 (generate)')
    p.add_argument('--head', default='FlatVisualHead',
                   help='generate: FlatVisualHead or FactorizedVisualHead')
    p.add_argument('--seq', type=int, default=2048, help='llava_step: tokens per sample')
    p.add_argument('--zero', type=int, default=3, help='llava_step: ZeRO stage')
    p.add_argument('--offload', default='none', choices=sorted(OFFLOAD),
                   help='llava_step: optimizer offload (7B + fp32 Adam ~ 110 GB: on an 80 GB '
                   'H100 use cpu_adam; an H200 fits none)')
    p.add_argument('--json', help='also write the results here')
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit('benchmarks need a GPU')
    results = BENCHMARKS[args.what](args)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
