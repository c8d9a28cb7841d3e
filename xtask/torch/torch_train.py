#!/usr/bin/env python3
"""PyTorch's side of the bench's training rows: one SGD step timed as convnet's.

    python3 torch_train.py --models resnet18 --batch 16 --size 224 \
        --steps 3 --warmup 1 --budget 2 --threads 2

Same model, batch and optimizer as `cargo xtask bench` (SGD, lr 0.01, momentum
0.9, cross-entropy on random labels, random inputs); warm-up steps, then timed
steps until at least --steps of them and --budget seconds (at most 100).
Prints, per model:

    NAME params P batch B: R images/s (median M ms, min A, max Z) peak_rss_bytes N

`lenet5` and `resnet20` take 1x28x28 inputs (the zoo's definitions: 61,706
and 272,186 parameters); the others are torchvision's, on 3xSIZExSIZE.
"""
import argparse, resource, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import models
from torchvision.models.resnet import BasicBlock


class LeNet5(nn.Module):
    """The lecture's LeNet-5 (ReLU, max-pooling), as convnet's zoo."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class ResNet20(nn.Module):
    """The zoo's ResNet-20: a 3x3 stem of 16 channels, three stages of three
    basic blocks (16, 32, 64 channels; stride 2 and a 1x1 projection where
    the shape changes), global average pooling, a linear layer to 10."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        blocks, inp = [], 16
        for width, stride in [(16, 1), (32, 2), (64, 2)]:
            for i in range(3):
                s = stride if i == 0 else 1
                down = None
                if s != 1 or inp != width:
                    down = nn.Sequential(nn.Conv2d(inp, width, 1, stride=s, bias=False),
                                         nn.BatchNorm2d(width))
                blocks.append(BasicBlock(inp, width, s, down))
                inp = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build(name):
    if name == "lenet5":
        return LeNet5(), 1
    if name == "resnet20":
        return ResNet20(), 1
    return getattr(models, name)(weights=None), 3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="resnet18")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--budget", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name in a.models.split(","):
        model, channels = build(name)
        model.train()
        params = sum(q.numel() for q in model.parameters())
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(a.batch, channels, a.size, a.size)
        y = torch.randint(0, 10 if channels == 1 else 1000, (a.batch,))

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        for _ in range(a.warmup):
            step()
        times, spent = [], 0.0
        while len(times) < 100 and (len(times) < a.steps or spent < a.budget):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
            spent += times[-1]
        med = statistics.median(times)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(f"{name} params {params} batch {a.batch}: {a.batch / med:.1f} images/s "
              f"(median {med * 1000:.1f} ms, min {min(times) * 1000:.1f}, "
              f"max {max(times) * 1000:.1f}) peak_rss_bytes {peak}", flush=True)


if __name__ == "__main__":
    main()
