"""A small decoder-only transformer on generated sequences: train, scan, curvature per block.

    python examples/transformer.py [--out transformer] [--width 64] [--depth 2] [--epochs 30]
                                   [--points 5] [--max-examples 256] [--k 3] [-- more `landscape scan` options]

Trains ``landscape.zoo.tiny_gpt`` (token embedding + learned positions, pre-LN blocks of causal
self-attention and MLP, LM head; ``torch.nn`` only; 0.10 M parameters by default) with AdamW on
``markov_copy``: sequences whose first half walks a fixed random Markov chain and whose second
half repeats the first, with next-token targets and the loss ``token_cross_entropy``. Saves it
with ``landscape.save`` (built-in names: loads without ``--trust``), runs

    landscape scan OUT/transformer.pt --points 5 --max-examples 256 -o OUT/transformer.landscape.h5

and then, through the API, the top-k Hessian eigenvalues of each part of the network alone
(``landscape.hessian_eigs(problem, k, params=["blocks.0.*"])``, the same as
``landscape hessian OUT/transformer.pt --params 'blocks.0.*'``), printed as a table. The scan reads
your own token arrays with ``-- --data file.npz`` (x_train, y_train [n, seq] int64, x_test, y_test).
With the defaults: about 100 CPU-seconds with one torch thread (training 44 s of wall time, all
of it 5.5 minutes on the 2-core VM while other jobs loaded it).
"""

from __future__ import annotations

import argparse
import time
from fnmatch import fnmatch
from pathlib import Path

import torch

import landscape
from landscape import zoo
from landscape.cli import main as landscape_main
from landscape.loading.specs import token_cross_entropy

BATCH_SIZE = 64


def train(model_kwargs: dict[str, int], data_kwargs: dict[str, int], epochs: int, seed: int) -> torch.nn.Module:
    """AdamW on shuffled mini-batches; prints the loss per epoch and the test loss at the end."""
    torch.manual_seed(seed)
    data = zoo.markov_copy(**data_kwargs, batch_size=data_kwargs["examples"])
    (x, y), = data["train"]
    model = zoo.tiny_gpt(**model_kwargs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    order = torch.Generator().manual_seed(seed + 1)
    for epoch in range(epochs):
        model.train()
        permutation = torch.randperm(len(y), generator=order)
        total = 0.0
        for start in range(0, len(y), BATCH_SIZE):
            idx = permutation[start:start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = token_cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        if epoch == epochs - 1 or (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1}/{epochs}: train loss {total / len(y):.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        (x_test, y_test), = zoo.markov_copy(**data_kwargs, batch_size=data_kwargs["test_examples"])["test"]
        logits = model(x_test)
    half = y_test.shape[1] // 2
    correct = (logits.argmax(-1) == y_test).float()
    print(f"test loss {token_cross_entropy(logits, y_test).item():.4f}; next-token accuracy "
          f"{correct[:, :half].mean().item():.3f} on the Markov half, {correct[:, half:].mean().item():.3f} "
          "on the copied half", flush=True)
    return model


def parts(depth: int) -> dict[str, list[str]]:
    """The network's parts as fnmatch patterns over parameter names."""
    blocks = {f"blocks.{i}": [f"blocks.{i}.*"] for i in range(depth)}
    return {"embeddings": ["token.*", "position"], **blocks, "norm + head": ["norm.*", "head.*"]}


def curvature_table(checkpoint: Path, depth: int, k: int, max_examples: int) -> None:
    """Top-k Hessian eigenvalues of each part alone (the other parameters held at θ*)."""
    problem, _ = landscape.load_problem(checkpoint, max_examples=max_examples)
    print(f"\ntop-{k} Hessian eigenvalues per part (train split, {problem.num_examples('train')} sequences)")
    print(f"{'part':<12} {'parameters':>10}  {'eigenvalues':<{10 * k}} converged")
    for name, patterns in parts(depth).items():
        eigs = landscape.hessian_eigs(problem, k=k, params=patterns)
        size = sum(p.numel() for n, p in problem.params.items() if any(fnmatch(n, q) for q in patterns))
        values = " ".join(f"{v:9.4f}" for v in eigs.eigenvalues.tolist())
        print(f"{name:<12} {size:>10,}  {values:<{10 * k}} {bool(eigs.all_converged)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("transformer"))
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2, help="decoder blocks")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=16)
    parser.add_argument("--length", type=int, default=32, help="tokens per training sequence")
    parser.add_argument("--examples", type=int, default=1024, help="training sequences (test: a quarter as many)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--points", type=int, default=5, help="grid points per axis of the scan")
    parser.add_argument("--max-examples", type=int, default=256, help="sequences per split the analyses use")
    parser.add_argument("--k", type=int, default=3, help="eigenvalues per part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("scan_options", nargs=argparse.REMAINDER, help="more `landscape scan` options, after --")
    args = parser.parse_args()

    started = time.perf_counter()
    model_kwargs = {"vocab": args.vocab, "context": args.length, "width": args.width, "depth": args.depth,
                    "heads": args.heads}
    data_kwargs = {"examples": args.examples, "test_examples": max(args.examples // 4, 1), "length": args.length,
                   "vocab": args.vocab, "seed": args.seed}
    model = train(model_kwargs, data_kwargs, args.epochs, args.seed)
    checkpoint = landscape.save(args.out / "transformer.pt", model, model_spec="tiny_gpt", model_kwargs=model_kwargs,
                                data_spec="markov_copy", data_kwargs=data_kwargs, loss="token_cross_entropy",
                                script="examples/transformer.py", epochs=args.epochs, seed=args.seed,
                                batch_size=BATCH_SIZE)
    print(f"saved {checkpoint}: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"trained in {time.perf_counter() - started:.0f} s", flush=True)
    status = landscape_main(["scan", str(checkpoint), "--points", str(args.points), "--max-examples",
                             str(args.max_examples), "-o", str(args.out / "transformer.landscape.h5"), "--overwrite",
                             *[a for a in args.scan_options if a != "--"]])
    if status:
        raise SystemExit(status)
    curvature_table(checkpoint, args.depth, args.k, args.max_examples)
    print(f"\ndone in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
