"""Train the bundled checkpoints in data/ (digits from landscape/datasets, fixed seeds, CPU, ~20 s).

    python examples/train_digits.py            # writes data/digits_mlp.pt and data/digits_cnn.pt

Each file is a state_dict plus metadata naming its model, data and loss, so
`landscape scan data/digits_mlp.pt` needs no other option.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

import landscape
from landscape import zoo

BATCH_SIZE = 64


def train(model: torch.nn.Module, data: dict, *, epochs: int, lr: float, batch_size: int, seed: int) -> float:
    """Plain SGD with momentum over shuffled mini-batches; returns the final test accuracy."""
    torch.manual_seed(seed)
    x = torch.cat([b[0] for b in data["train"]])
    y = torch.cat([b[1] for b in data["train"]])
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(0, len(y), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        correct = sum((model(xb).argmax(1) == yb).sum().item() for xb, yb in data["test"])
    return correct / sum(len(yb) for _, yb in data["test"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    bundled = [  # (name, data, epochs): model and data are the built-ins of the same names
        ("digits_mlp", "digits", 60),
        ("digits_cnn", "digits_images", 30),
    ]
    for name, data, epochs in bundled:
        torch.manual_seed(args.seed)
        model = zoo.BUILTINS[name]()
        acc = train(model, zoo.BUILTINS[data](), epochs=epochs, lr=0.05, batch_size=BATCH_SIZE, seed=args.seed)
        landscape.save(args.out / f"{name}.pt", model, model_spec=name, data_spec=data, loss="cross_entropy",
                       script="examples/train_digits.py", seed=args.seed, test_accuracy=acc,
                       batch_size=BATCH_SIZE,  # `landscape noise` reports the noise for this B
                       optimizer=f"SGD(lr=0.05, momentum=0.9), batch {BATCH_SIZE}, {epochs} epochs")
        print(f"{name}: test accuracy {acc:.3f}")

if __name__ == "__main__":
    main()
