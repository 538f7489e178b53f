#!/usr/bin/env python3
"""PyTorch CPU reference of one learned-sampler training step (SPEC section 2).

Forward + TruncatedLogitsLoss + backward + AdamW on synthetic LM-like rows, the same step
`adasamp bench-train` times on the fast and candle engines. Run by hand where PyTorch is
installed; `adasamp bench-train` runs it itself when `python3 -c "import torch"` works and
prints its figure beside the Rust engines'.

    python3 benches/reference/train_step.py \
        --config-json '{"architecture":"sampling_network","d_model":32,"d_ff":64,"n_blocks":4,"n_heads":4,"scale":true}' \
        --threads 2 --vocab 49152 --batch 16 --steps 3

Prints progress on stderr and one JSON line on stdout: {"positions_per_s": ...}.
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class SwiGLU(nn.Module):
    def __init__(self, inp, h, out):
        super().__init__()
        f = 2 * h // 3
        self.gate = nn.Linear(inp, f)
        self.up = nn.Linear(inp, f)
        self.down = nn.Linear(f, out)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


def gate(l, s, tau):
    return l + F.logsigmoid(s * l + tau)


class Local(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.mlp = SwiGLU(1, c["hidden"], 1)
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.threshold = nn.Parameter(torch.tensor(10.0))

    def forward(self, lp):
        l = lp + self.mlp(lp.unsqueeze(-1)).squeeze(-1)
        return gate(l, self.scale, self.threshold)


class Simple(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden"]
        self.dynamic = c["dynamic_truncation"]
        self.local = nn.Linear(1, h)
        self.mlp = SwiGLU(h + 2, h, 1)
        if self.dynamic:
            self.truncation = nn.Linear(2, 2)
        else:
            self.raw = nn.Parameter(torch.tensor([0.5413, 10.0]))

    def forward(self, lp):
        with torch.no_grad():
            stats = torch.stack([lp.max(-1).values, -(lp.exp() * lp).sum(-1)], -1)
        f = F.silu(self.local(lp.unsqueeze(-1)))
        ctx = stats.unsqueeze(1).expand(-1, lp.shape[1], -1)
        l = lp + self.mlp(torch.cat([f, ctx], -1)).squeeze(-1)
        st = F.softplus(self.truncation(stats)) if self.dynamic else F.softplus(self.raw).expand(lp.shape[0], 2)
        return gate(l, st[:, :1], st[:, 1:])


class LinearAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.heads = heads

    def forward(self, x):
        n, v, d = x.shape
        q, k, val = self.qkv(x).chunk(3, -1)
        hw = d // self.heads
        q = (F.elu(q) + 1).view(n, v, self.heads, hw)
        k = (F.elu(k) + 1).view(n, v, self.heads, hw)
        val = val.view(n, v, self.heads, hw)
        kv = torch.einsum("nvhi,nvhj->nhij", k, val)
        ks = k.sum(1)
        num = torch.einsum("nvhi,nhij->nvhj", q, kv)
        den = torch.einsum("nvhi,nhi->nvh", q, ks).unsqueeze(-1) + 1e-6
        return self.out((num / den).reshape(n, v, d))


class Block(nn.Module):
    def __init__(self, d, d_ff, heads):
        super().__init__()
        self.attn = LinearAttention(d, heads)
        self.ln1 = nn.LayerNorm(d)
        self.ffn = SwiGLU(d, d_ff, d)
        self.ln2 = nn.LayerNorm(d)

    def forward(self, x):
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.ffn(x))


class SamplingNetwork(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["d_model"]
        self.encoder = SwiGLU(1, c.get("encoder_hidden", 32), d)
        self.blocks = nn.ModuleList(Block(d, c["d_ff"], c["n_heads"]) for _ in range(c["n_blocks"]))
        self.transform = SwiGLU(2 * d, d, 1)
        self.scale = SwiGLU(d, d // 2, 1) if c["scale"] else None
        self.truncation = SwiGLU(d, d // 2, 2)

    def forward(self, lp):
        x = self.encoder(lp.unsqueeze(-1))
        for b in self.blocks:
            x = b(x)
        c = x.mean(1)
        l = lp + self.transform(torch.cat([x, c.unsqueeze(1).expand_as(x)], -1)).squeeze(-1)
        if self.scale is not None:
            l = l * F.softplus(self.scale(c))
        st = F.softplus(self.truncation(c))
        return gate(l, st[:, :1], st[:, 1:])


def truncated_logits_loss(pred, target, gamma=1.0):
    mask = torch.isinf(target)
    lp_t = torch.log_softmax(target, -1)
    p_t = lp_t.exp()
    log_q = torch.log_softmax(pred, -1)
    kl = torch.where(mask, torch.zeros_like(pred), p_t * (lp_t.masked_fill(mask, 0.0) - log_q)).sum(-1)
    penalty = torch.where(mask, log_q.exp(), torch.zeros_like(pred)).sum(-1)
    return (kl + gamma * penalty).mean()


def synthetic(rows, vocab, gen):
    sharp = torch.rand(rows, 1, generator=gen) * 2.5 + 0.5
    rank = torch.arange(1, vocab + 1, dtype=torch.float32)
    z = -sharp * rank.log() + (torch.rand(rows, vocab, generator=gen) - 0.5)
    z = torch.stack([row.roll(int(s)) for row, s in zip(z, torch.randint(0, vocab, (rows,), generator=gen))])
    t = z / 0.8
    p = torch.softmax(t, -1)
    t = t.masked_fill(p < 0.1 * p.max(-1, keepdim=True).values, -math.inf)
    return z, t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config-json", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = json.loads(a.config_json)
    net = {"local_probability_transform": Local, "simple_distribution_aware_transform": Simple,
           "sampling_network": SamplingNetwork}[c["architecture"]](c)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    z, t = synthetic(a.batch, a.vocab, torch.Generator().manual_seed(7))
    lp = torch.log_softmax(z, -1)
    times = []
    for _ in range(a.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = truncated_logits_loss(net(lp), t)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        print(f"step {len(times)}: {times[-1]:.3f} s, loss {loss.item():.4f}", file=sys.stderr)
    print(json.dumps({"positions_per_s": a.batch * a.steps / sum(times[1:])}))


if __name__ == "__main__":
    main()
