#!/usr/bin/env python3
"""PyTorch eager baseline for deepen's throughput benchmarks.

Builds the same LLaMA as deepen's models package (Pre-LN RMSNorm blocks, rotary embeddings in
the Hugging Face halves convention, SwiGLU MLP, untied LM head, no biases), trains it with Adam
on random tokens and prints one JSON line per measurement:

    {"kind": "train", "vocab": 32000, "tokens_per_s": 912.3, "median_ms": 2245.1, "runs": 5, "threads": 2, "torch": "1.13.1"}

Run by `pnpm bench` in packages/trainer when python3 with torch is installed; install it on
Debian with `bash tooling/pytorch/install.sh`. Written against torch 1.13 (Debian 12) and
newer: plain matmul attention, no torch.compile, float32, eager mode, like deepen.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Block(nn.Module):
    def __init__(self, hidden, heads, intermediate, eps):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.input_layernorm = RMSNorm(hidden, eps)
        self.post_attention_layernorm = RMSNorm(hidden, eps)
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, hidden, bias=False)
        self.v_proj = nn.Linear(hidden, hidden, bias=False)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def attention(self, x, cos, sin, mask):
        B, T, H = x.shape
        split = lambda t: t.view(B, T, self.heads, self.head_dim).transpose(1, 2)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + mask
        context = torch.matmul(F.softmax(scores, dim=-1), v)
        return self.o_proj(context.transpose(1, 2).reshape(B, T, H))

    def forward(self, x, cos, sin, mask):
        h = x + self.attention(self.input_layernorm(x), cos, sin, mask)
        m = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(m)) * self.up_proj(m))


class Llama(nn.Module):
    def __init__(self, vocab, layers, hidden, heads, intermediate, seq_len, eps=1e-6, theta=10000.0):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(Block(hidden, heads, intermediate, eps) for _ in range(layers))
        self.norm = RMSNorm(hidden, eps)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        head_dim = hidden // heads
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
        angles = torch.outer(torch.arange(seq_len).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())
        self.register_buffer("mask", torch.full((seq_len, seq_len), -1e9).triu(1))
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin, self.mask)
        return self.lm_head(self.norm(x))


def measure(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab", type=int, nargs="+", default=[32000, 4096])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=352)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--kinds", nargs="+", default=["train", "forward"], choices=["train", "forward"])
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for vocab in args.vocab:
        model = Llama(vocab, args.layers, args.hidden, args.heads, args.intermediate, args.seq_len)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        ids = torch.randint(0, vocab, (args.batch, args.seq_len))
        targets = torch.cat((ids[:, 1:], torch.full((args.batch, 1), -100)), dim=1)

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            logits = model(ids)
            loss = F.cross_entropy(logits.view(-1, vocab), targets.reshape(-1), ignore_index=-100)
            loss.backward()
            optimizer.step()

        def forward():
            with torch.no_grad():
                model(ids)

        tokens = args.batch * args.seq_len
        for kind in args.kinds:
            seconds = measure(train_step if kind == "train" else forward, args.warmup, args.runs)
            print(json.dumps({
                "kind": kind, "vocab": vocab, "batch": args.batch, "seq_len": args.seq_len,
                "tokens_per_s": tokens / seconds, "median_ms": seconds * 1000, "runs": args.runs,
                "threads": torch.get_num_threads(), "torch": torch.__version__,
            }), flush=True)


if __name__ == "__main__":
    main()
