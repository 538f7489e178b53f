#!/usr/bin/env python3
"""PyTorch GPU reference of the learned samplers (SPEC section 2) for `adasamp bench-gpu`.

Times, on one CUDA device, the SamplingNetwork (or the SimpleDistributionAwareTransform):

- forward at V = 128256 (Llama-3 vocabulary), batch 1 / 16 / 64, inference (no autograd);
- one training step (forward, TruncatedLogitsLoss, backward, AdamW) at V = 49152 with 32 positions;

each in two modes:

- `fp32_eager`: float32 weights and activations, eager PyTorch;
- `bf16_compiled`: `torch.compile` of the network; the forward runs with bfloat16 weights and
  inputs, the training step with float32 master weights under `torch.autocast(bfloat16)`.

The networks are the ones of `train_step.py` (this directory); their `state_dict` names are the
parameter names of adasamp's checkpoints for the SamplingNetwork (`encoder.*`, `blocks.{i}.*`,
`transform.*`, `scale.*`, `truncation.*`) and for the dynamic SimpleDistributionAwareTransform
(`local.*`, `mlp.*`, `truncation.*`). Only the Python standard library and PyTorch are imported.

    python3 benches/reference/gpu_sampler.py                      # the reference SamplingNetwork
    python3 benches/reference/gpu_sampler.py --config-json \
        '{"architecture":"simple_distribution_aware_transform","hidden":32,"dynamic_truncation":true}'

Prints progress on stderr and one JSON object on stdout:
{"device", "torch", "config", "forward_vocab", "forward_ms": {mode: {batch: ms}},
 "train_vocab", "train_positions", "train_positions_per_s": {mode: positions/s}}.
Times are medians over `--iters` timed repetitions after `--warmup` untimed ones (the first
calls of a compiled module compile it), each bracketed by `torch.cuda.synchronize()`.
"""

import argparse
import json
import statistics
import sys
import time

import torch

from train_step import SamplingNetwork, Simple, synthetic, truncated_logits_loss

REFERENCE_CONFIG = {
    "architecture": "sampling_network",
    "d_model": 32,
    "d_ff": 64,
    "n_blocks": 4,
    "n_heads": 4,
    "scale": True,
}

NETWORKS = {"sampling_network": SamplingNetwork, "simple_distribution_aware_transform": Simple}


def timed_median(fn, warmup, iters):
    """Median wall time in seconds of `fn()` over `iters` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def lm_rows(rows, vocab, seed, device):
    """`rows` synthetic LM-like logit rows and their t0.8 -> min_p 0.1 targets (train_step.py)."""
    z, t = synthetic(rows, vocab, torch.Generator().manual_seed(seed))
    return z.to(device), t.to(device)


def build(config, seed, device):
    torch.manual_seed(seed)
    return NETWORKS[config["architecture"]](config).to(device)


def forward_ms(config, mode, vocab, batches, a):
    net = build(config, 0, "cuda")
    dtype = torch.float32
    if mode == "bf16_compiled":
        dtype = torch.bfloat16
        net = torch.compile(net.to(dtype))
    out = {}
    for batch in batches:
        z, _ = lm_rows(batch, vocab, 7 + batch, "cuda")
        lp = torch.log_softmax(z, -1).to(dtype)
        with torch.no_grad():
            seconds = timed_median(lambda: net(lp), a.warmup, a.iters)
        out[str(batch)] = seconds * 1e3
        print(f"forward {mode} V={vocab} batch={batch}: {seconds * 1e3:.3f} ms", file=sys.stderr)
        del z, lp
        torch.cuda.empty_cache()
    return out


def train_positions_per_s(config, mode, vocab, positions, a):
    net = build(config, 0, "cuda")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    model = torch.compile(net) if mode == "bf16_compiled" else net
    z, t = lm_rows(positions, vocab, 11, "cuda")
    lp = torch.log_softmax(z, -1)

    def step():
        opt.zero_grad(set_to_none=True)
        if mode == "bf16_compiled":
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                pred = model(lp)
            loss = truncated_logits_loss(pred.float(), t)
        else:
            loss = truncated_logits_loss(model(lp), t)
        loss.backward()
        opt.step()

    seconds = timed_median(step, a.warmup, a.iters)
    rate = positions / seconds
    print(f"train {mode} V={vocab} positions={positions}: {rate:.1f} positions/s", file=sys.stderr)
    return rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config-json", default=json.dumps(REFERENCE_CONFIG))
    ap.add_argument("--forward-vocab", type=int, default=128256)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--train-vocab", type=int, default=49152)
    ap.add_argument("--train-positions", type=int, default=32)
    ap.add_argument("--modes", default="fp32_eager,bf16_compiled")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_sampler.py: no CUDA device visible to PyTorch")
    config = json.loads(a.config_json)
    if config.get("architecture") not in NETWORKS:
        sys.exit(f"gpu_sampler.py: architecture {config.get('architecture')!r} is not one of {sorted(NETWORKS)}")
    batches = [int(b) for b in a.batches.split(",")]
    modes = a.modes.split(",")
    for mode in modes:
        if mode not in ("fp32_eager", "bf16_compiled"):
            sys.exit(f"gpu_sampler.py: mode {mode!r} is not fp32_eager or bf16_compiled")
    torch.backends.cuda.matmul.allow_tf32 = False
    result = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "config": config,
        "forward_vocab": a.forward_vocab,
        "forward_ms": {m: forward_ms(config, m, a.forward_vocab, batches, a) for m in modes},
        "train_vocab": a.train_vocab,
        "train_positions": a.train_positions,
        "train_positions_per_s": {
            m: train_positions_per_s(config, m, a.train_vocab, a.train_positions, a) for m in modes
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
