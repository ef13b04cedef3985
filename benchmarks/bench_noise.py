"""Per-example gradients: chunked ``vmap(grad)`` vs a Python loop of single-example backward passes.

For 1024 training examples of the digits MLP and the digits CNN (BatchNorm, eval mode), in
one run: wall time (best of ``--repeats``), the speed-up ratio, the agreement of the two
results, and the peak extra memory of each method. Memory is measured in a fresh process
per (model, method) so one method's peak cannot hide the other's (timing runs both
methods interleaved in one process): on CPU the growth of the
peak resident set size (ru_maxrss) over the process after set-up; on CUDA
``torch.cuda.max_memory_allocated`` over the same span.

    PYTHONPATH=. python benchmarks/bench_noise.py [--examples 1024] [--repeats 3] [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time

import torch
import torch.nn.functional as F


def build(name: str, device: str):
    from landscape import Problem
    from landscape.zoo import digits, digits_cnn, digits_images, digits_mlp

    torch.manual_seed(0)
    model, data = (digits_mlp(), digits()) if name == "mlp" else (digits_cnn(), digits_images())
    problem = Problem.create(model, F.cross_entropy, data, device=device)
    return model.to(device).eval(), problem


def loop_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The naive way: one forward + backward per example, gradients read from .grad."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in params]))
    return torch.stack(rows)


def peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _compute(method: str, problem, model, indices, x, y) -> torch.Tensor:
    from landscape.noise import per_example_gradients

    if method == "vmap":
        return per_example_gradients(problem, indices, show_progress=False).matrix
    return loop_gradients(model, x, y)


def measure(name: str, examples: int, repeats: int, device: str, threads: int, memory_of: str | None,
            queue) -> None:
    """Timing (``memory_of`` None): both methods interleaved, best of ``repeats`` each, so a
    change in machine load hits both alike. Memory: one method once, in its own process."""
    from landscape.noise import gather_examples

    if threads:
        torch.set_num_threads(threads)
    model, problem = build(name, device)
    indices = torch.arange(examples)
    batch = gather_examples(problem, indices)
    x, y = batch.inputs, batch.target
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if memory_of is not None:
        if device.startswith("cuda"):
            sync()
            torch.cuda.reset_peak_memory_stats()
        base = peak_bytes(device)
        _compute(memory_of, problem, model, indices, x, y)
        sync()
        queue.put({"extra_bytes": peak_bytes(device) - base})
        return
    times: dict[str, list[float]] = {"vmap": [], "loop": []}
    results = {}
    for _ in range(repeats):
        for method in ("vmap", "loop"):
            start = time.perf_counter()
            results[method] = _compute(method, problem, model, indices, x, y)
            sync()
            times[method].append(time.perf_counter() - start)
    queue.put({"vmap": min(times["vmap"]), "loop": min(times["loop"]),
               "diff": float((results["vmap"].detach().cpu() - results["loop"].detach().cpu()).abs().max()),
               "dim": int(results["vmap"].shape[1])})


def run_isolated(*args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=measure, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the workers (0: default)")
    args = parser.parse_args()
    threads = args.threads or torch.get_num_threads()
    print(f"machine: {platform.machine()}, {threads} torch threads, torch {torch.__version__}, "
          f"device {args.device}; {args.examples} examples, best of {args.repeats}")
    print("| model | d | vmap s | loop s | speed-up | max abs diff | vmap extra MiB | loop extra MiB | G MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in ("mlp", "cnn"):
        timing = run_isolated(name, args.examples, args.repeats, args.device, args.threads, None)
        fast_mem = run_isolated(name, args.examples, 1, args.device, args.threads, "vmap")["extra_bytes"]
        slow_mem = run_isolated(name, args.examples, 1, args.device, args.threads, "loop")["extra_bytes"]
        g_mib = args.examples * timing["dim"] * 4 / 2**20
        print(f"| digits {name.upper()} | {timing['dim']} | {timing['vmap']:.3f} | {timing['loop']:.3f} | "
              f"{timing['loop'] / timing['vmap']:.1f}× | {timing['diff']:.1e} | {fast_mem / 2**20:.1f} | "
              f"{slow_mem / 2**20:.1f} | {g_mib:.1f} |")


if __name__ == "__main__":
    main()
