"""Is SAM (or SWA) flatter than SGD, and by which measure? Train all three on digits, then compare.

    python examples/flatness.py [--out flatness] [--epochs 60] [--screenshot docs/flatness.png]

Trains three versions of the zoo's digits MLP from one initialization and one data order
(a few minutes on a 2-core CPU, most of it in the comparison):
  * SGD: momentum 0.9, learning rate 0.05, batch 64;
  * SAM: the same base optimizer inside ``landscape.training.SAM`` (ρ = 0.05);
  * SWA: the SGD run, with the weights averaged after every epoch of its second half
    (``landscape.training.SWA``),
saves them with ``landscape.save`` and runs

    landscape compare SGD.pt SAM.pt SWA.pt --labels SGD,SAM,SWA -o OUT/flatness.compare.h5

which writes the results file and its report (OUT/flatness.compare.html): every sharpness
measure per model, the loss along shared random rays and along the lines between the models.
``--screenshot PNG`` also opens the report in headless Chromium (playwright) and saves its
sharpness section, as in the README.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

import landscape
from landscape import zoo
from landscape.cli import main as landscape_main
from landscape.training import SAM, SWA

BATCH_SIZE = 64


def train(method: str, epochs: int, seed: int) -> torch.nn.Module:
    """One model trained by ``method`` (SGD, SAM or SWA) from the seed's initialization and data order."""
    torch.manual_seed(seed)
    model = zoo.digits_mlp()
    (x, y), = zoo.digits(batch_size=10_000)["train"]
    optimizer: torch.optim.Optimizer
    if method == "SAM":
        optimizer = SAM(model, torch.optim.SGD, rho=0.05, lr=0.05, momentum=0.9)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    average = SWA(model) if method == "SWA" else None
    order = torch.Generator().manual_seed(seed + 1)
    model.train()
    for epoch in range(epochs):
        permutation = torch.randperm(len(y), generator=order)
        for start in range(0, len(y), BATCH_SIZE):
            idx = permutation[start:start + BATCH_SIZE]

            def closure(idx: torch.Tensor = idx) -> torch.Tensor:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                return loss
            if isinstance(optimizer, SAM):
                optimizer.step(closure)
            else:
                closure()
                optimizer.step()
        if average is not None and epoch >= epochs // 2:
            average.update(model)
    return average.averaged() if average is not None else model.eval()


def run(out: Path, epochs: int, seed: int, extra: list[str]) -> Path:
    """Train, save and compare; returns the results file."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for method in ("SGD", "SAM", "SWA"):
        model = train(method, epochs, seed)
        paths.append(landscape.save(out / f"{method}.pt", model, model_spec="digits_mlp", data_spec="digits",
                                    loss="cross_entropy", script="examples/flatness.py", method=method,
                                    epochs=epochs, seed=seed, batch_size=BATCH_SIZE))
        print(f"trained {method}: {paths[-1]}", flush=True)
    result = out / "flatness.compare.h5"
    status = landscape_main(["compare", *map(str, paths), "--labels", "SGD,SAM,SWA", "-o", str(result),
                             "--overwrite", *extra])
    if status:
        raise SystemExit(status)
    return result


def screenshot(html: Path, png: Path) -> None:
    """The report's sharpness figures and measures table, rendered by headless Chromium, as one PNG."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(html.resolve().as_uri())
        page.wait_for_function("[...document.querySelectorAll('.lsplot')].every(d => d.dataset.rendered === 'true')")
        page.mouse.move(2, 2)  # no hover toolbar in the picture
        top = page.locator("#panel-sharpness").bounding_box()
        end = page.locator('#panel-sharpness .table[data-key="sharpness/cost"]').bounding_box()
        assert top is not None and end is not None
        page.screenshot(path=str(png), full_page=True,
                        clip={"x": top["x"], "y": top["y"], "width": top["width"], "height": end["y"] - top["y"]})
        browser.close()
    print(f"screenshot: {png}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("flatness"))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--screenshot", type=Path, help="also save the report's sharpness section as this PNG")
    parser.add_argument("compare_options", nargs=argparse.REMAINDER,
                        help="more options for `landscape compare` (after --), e.g. -- --measure worst_l2")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse()
    results = run(args.out, args.epochs, args.seed, [a for a in args.compare_options if a != "--"])
    if args.screenshot:
        screenshot(results.with_suffix(".html"), args.screenshot)
