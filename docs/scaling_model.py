#!/usr/bin/env python3
"""The scaling model of docs/scaling.md: data-parallel training over N
machines with a ring allreduce, from the bench's measured training step
times and each zoo model's gradient size.

Usage:
    cargo run --release -p convnet -- zoo > zoo.txt
    cargo xtask bench --json bench.json        # or any saved bench JSON
    python3 docs/scaling_model.py bench.json zoo.txt > table.md

Model (per step, per machine, no overlap of compute and communication):
    compute   T_c(b) = b * t_img          t_img: seconds per image, fwd+bwd+step, from the bench
    allreduce T_ar   = 2 (N-1)/N * G / B + 2 (N-1) * alpha
                                          G = 4 bytes * parameters, B = link bandwidth,
                                          alpha = per-message latency (30 us, TCP on Ethernet)
    efficiency E     = T_c / (T_c + T_ar)
    E >= 0.8  <=>  T_c >= 4 T_ar  <=>  b >= 4 T_ar / t_img  (per machine; global batch N b)
"""
import json
import math
import re
import sys

LINKS = {"10 Gb/s": 10e9 / 8, "25 Gb/s": 25e9 / 8}
MACHINES = [8, 64]
ALPHA = 30e-6
TARGET = 0.8


def params_of(zoo_text):
    out = {}
    for line in zoo_text.splitlines():
        m = re.match(r"^(\w+)\s+([\d,]+)\s+\d+x\d+x\d+", line)
        if m:
            out[m.group(1)] = int(m.group(2).replace(",", ""))
    return out


def step_times(bench):
    """Seconds per image of a training step, from the largest batch measured."""
    best = {}
    for row in bench["rows"]:
        m = re.match(r"^train\.(\w+)\.b(\d+)$", row["name"])
        if not m or row.get("median_s") is None:
            continue
        model, batch = m.group(1), int(m.group(2))
        if model not in best or batch > best[model][0]:
            best[model] = (batch, row["median_s"] / batch)
    return best


def allreduce_seconds(grad_bytes, n, bandwidth):
    return 2 * (n - 1) / n * grad_bytes / bandwidth + 2 * (n - 1) * ALPHA


def main():
    bench = json.load(open(sys.argv[1]))
    params = params_of(open(sys.argv[2]).read())
    times = step_times(bench)
    h = bench.get("header", {})
    cpu = f"{h.get('cpu', '?')}, {h.get('cores', '?')} cores, {h.get('simd', '?')}, commit {h.get('commit', '?')}"
    print(f"Step times from the bench JSON given ({cpu}).\n")
    head = ["model", "parameters", "gradient", "bench batch", "ms / image"]
    for link in LINKS:
        for n in MACHINES:
            head.append(f"{n} × {link}")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for model, (batch, t_img) in sorted(times.items(), key=lambda kv: params.get(kv[0], 0)):
        if model not in params:
            continue
        g = 4 * params[model]
        cells = [model, f"{params[model]:,}", f"{g / 1e6:,.1f} MB", str(batch), f"{t_img * 1e3:,.1f}"]
        for bw in LINKS.values():
            for n in MACHINES:
                t_ar = allreduce_seconds(g, n, bw)
                b = math.ceil(TARGET / (1 - TARGET) * t_ar / t_img)
                cells.append(f"{t_ar * 1e3:,.1f} ms → {b:,} ({b * n:,})")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
