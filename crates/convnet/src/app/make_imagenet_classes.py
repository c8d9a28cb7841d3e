"""Writes `imagenet_classes.txt`: the 1,000 ImageNet-1k class names in index
order, one per line, as torchvision's weights metadata gives them
(`weights.meta["categories"]`, the same list for every IMAGENET1K_V1 model).

Needs torchvision (no download: the names ship with the package). Run from
anywhere:

    python crates/convnet/src/app/make_imagenet_classes.py
"""

from pathlib import Path

from torchvision.models import ResNet18_Weights


def main():
    names = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert len(names) == 1000
    assert all(n and n == n.strip() and "\n" not in n for n in names)
    out = Path(__file__).resolve().parent / "imagenet_classes.txt"
    out.write_text("".join(n + "\n" for n in names), encoding="utf-8")
    print(f"wrote {len(names)} names to {out}")


if __name__ == "__main__":
    main()
