#!/usr/bin/env python3
"""PyTorch's side of `cargo xtask parity`.

    python parity.py make --model resnet18 --out DIR [--batch 2] [--seed 0] [--threads 2]
    python parity.py compare --expected DIR/logits.npy --got got.npy

`make` builds `torchvision.models.NAME(weights=None)` (GoogLeNet without
its auxiliary heads, `init_weights=True`, `transform_input=False`) and makes
every tensor of its state dict non-trivial, deterministically from `--seed`:

1. `perturb`: every parameter gets noise of a quarter of its spread, with a
   floor for tensors initialised to a constant (norm scales 0.1, biases
   0.05, others 0.01: ViT's zero head); ConvNeXt's `layer_scale` ~
   U(0.1, 1) instead of 1e-6; ViT's `class_token` and `pos_embedding` ~
   N(0, 0.02); Swin's integer `relative_position_index` buffers kept as
   they are; BatchNorm `running_mean` ~ N(0, 0.1), `running_var` ~
   U(0.5, 1.5), `num_batches_tracked` a random integer;
2. `rescale`: one forward pass of a calibration batch divides each
   convolution's and linear layer's weight and bias by the spread of its
   output, so that random weights do not shrink the signal to nothing (the
   logits would be the last bias alone);
3. `calibrate_batch_norm`: BatchNorm statistics become those of the
   calibration batch, then perturbed (mean moved by N(0, 0.1) standard
   deviations, variance scaled by U(0.5, 1.5)), so that evaluation mode
   runs on statistics that are neither trivial nor absurd.

It then loads the result back strictly, and writes:

- `DIR/weights.pth`          `torch.save(model.state_dict())`
- `DIR/weights.safetensors`  `safetensors.torch.save_file` of contiguous clones
- `DIR/input.npy`            float32 `randn(N, 3, 224, 224)`
- `DIR/logits.npy`           float32 eval-mode logits `[N, 1000]`

and prints one JSON line: model, params, the logits' spread and
`input_dependence`, the spread of the logits across the images relative to
their whole spread (random networks on noise give similar logits to every
image, a few per cent of the spread apart; 1e-8 would mean logits that are
the last bias alone).

`compare` prints one JSON line `{"max_rel_err", "top1_agree", "n"}`:
`max_rel_err` is, per image, `max|got - expected| / max|expected|`, the
largest over the images (`null` if `got` has non-finite values);
`top1_agree` is how many images have the same arg-max in both.
"""
import argparse
import json
import os
import sys

import numpy as np


def perturb(sd, gen):
    """Returns a perturbed copy of the state dict `sd` (same keys, shapes
    and dtypes), drawn from the generator `gen` key after key."""

    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen)

    out = {}
    for key, t in sd.items():
        leaf = key.rsplit(".", 1)[-1]
        shape = t.shape
        if leaf == "num_batches_tracked":
            new = torch.randint(1, 100_000, shape, generator=gen, dtype=t.dtype)
        elif leaf == "relative_position_index":
            # Swin's table lookup (integers): part of the architecture.
            new = t.clone()
        elif not t.is_floating_point():
            raise SystemExit(f"unexpected non-float tensor {key} ({t.dtype})")
        elif leaf == "running_mean":
            new = normal(shape, 0.1)
        elif leaf == "running_var":
            new = uniform(shape, 0.5, 1.5)
        elif leaf == "layer_scale":
            # ConvNeXt initialises these to 1e-6: blocks would be no-ops.
            new = uniform(shape, 0.1, 1.0)
        elif leaf in ("class_token", "pos_embedding"):
            new = normal(shape, 0.02)
        else:
            # Noise relative to the tensor's spread, with a floor for the
            # tensors initialised to a constant (biases at 0, norm scales at
            # 1, ViT's zero head).
            std = float(t.float().std()) if t.numel() > 1 else 0.0
            if t.dim() == 1 and leaf.endswith("weight"):
                floor = 0.1
            elif leaf.endswith("bias"):
                floor = 0.05
            else:
                floor = 0.01
            new = t.float() + normal(shape, max(0.25 * std, floor))
        out[key] = new.to(t.dtype).contiguous()
    return out


def rescale(model, x):
    """One forward pass of `x` that divides every convolution's and linear
    layer's weight and bias by the spread of its output (LSUV-like), so
    that activations stay around unit scale through the whole network and
    the logits depend on the input rather than only on the last biases.
    Random weights without this shrink the signal layer after layer (VGG,
    AlexNet, GoogLeNet's std-0.01 convolutions in evaluation mode)."""

    def hook(module, _inputs, output):
        s = float(output.std())
        if not (s > 0 and s < float("inf")):
            return None
        module.weight.div_(s)
        if module.bias is not None:
            module.bias.div_(s)
        return output / s

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()


def calibrate_batch_norm(model, x, gen):
    """Sets every BatchNorm's running statistics to those of the batch `x`
    seen in training mode (cumulative average), then perturbs them: mean
    moved by N(0, 0.1) standard deviations, variance scaled by U(0.5, 1.5).
    Statistics drawn at random without regard to the activations would
    leave evaluation-mode networks badly scaled."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
        for bn in bns:
            bn.momentum = 0.1
            std = bn.running_var.sqrt()
            bn.running_mean.add_(torch.randn(bn.running_mean.shape, generator=gen) * 0.1 * std)
            bn.running_var.mul_(0.5 + torch.rand(bn.running_var.shape, generator=gen))
            bn.num_batches_tracked.fill_(int(torch.randint(1, 100_000, (), generator=gen)))
    model.eval()


def build(name):
    kwargs = {}
    if name == "googlenet":
        kwargs = {"aux_logits": False, "init_weights": True, "transform_input": False}
    return getattr(torchvision.models, name)(weights=None, **kwargs)


def make(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = build(a.model)
    gen = torch.Generator().manual_seed(a.seed + 1)
    sd = perturb(model.state_dict(), gen)
    model.load_state_dict(sd, strict=True)
    calibration = torch.randn(4, 3, 224, 224, generator=gen, dtype=torch.float32)
    rescale(model, calibration)
    calibrate_batch_norm(model, calibration, gen)
    # Round trip through the state dict: what is saved is what runs.
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.randn(a.batch, 3, 224, 224, generator=gen, dtype=torch.float32)
    with torch.no_grad():
        logits = model(x).float()
    if not torch.isfinite(logits).all():
        raise SystemExit(f"{a.model}: non-finite logits after perturbation")

    os.makedirs(a.out, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(a.out, "weights.pth"))
    safetensors.torch.save_file(
        {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
        os.path.join(a.out, "weights.safetensors"),
    )
    np.save(os.path.join(a.out, "input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(a.out, "logits.npy"), logits.numpy().astype(np.float32))

    spread = float(logits.std())
    dependence = float((logits - logits.mean(0, keepdim=True)).std()) / spread if a.batch > 1 else None
    print(json.dumps({
        "model": a.model,
        "params": sum(p.numel() for p in model.parameters()),
        "tensors": len(sd),
        "logits_std": spread,
        "logits_max_abs": float(logits.abs().max()),
        "input_dependence": dependence,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }))


def compare(a):
    expected = np.load(a.expected)
    got = np.load(a.got)
    if expected.shape != got.shape:
        raise SystemExit(f"shape mismatch: expected {expected.shape}, got {got.shape}")
    if got.dtype != np.float32:
        raise SystemExit(f"{a.got}: dtype {got.dtype}, expected float32")
    n = expected.shape[0]
    e = expected.reshape(n, -1).astype(np.float64)
    g = got.reshape(n, -1).astype(np.float64)
    if np.isfinite(g).all():
        per_image = np.abs(g - e).max(axis=1) / np.abs(e).max(axis=1)
        max_rel = float(per_image.max())
    else:
        max_rel = None
    agree = int((e.argmax(axis=1) == g.argmax(axis=1)).sum())
    print(json.dumps({"max_rel_err": max_rel, "top1_agree": agree, "n": n}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="perturbed torchvision weights, an input and the logits")
    m.add_argument("--model", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--batch", type=int, default=2)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("compare", help="max relative error and top-1 agreement of two logit files")
    c.add_argument("--expected", required=True)
    c.add_argument("--got", required=True)
    a = p.parse_args()
    if a.cmd == "make":
        make(a)
    else:
        compare(a)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "make":
        import torch
        import torch.nn as nn
        import torchvision
        import safetensors.torch
    main()
