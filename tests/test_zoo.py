"""The built-in models at real shapes: ResNet-18 for 32×32×3 inputs and CIFAR-shaped data."""

from __future__ import annotations

import numpy as np
import torch

import landscape
from landscape import zoo


def test_resnet18_has_the_standard_parameter_count_and_shapes():
    # 11,173,962 is torchvision's resnet18 with a 3×3 stem and 10 classes (the CIFAR variant)
    assert sum(p.numel() for p in zoo.resnet18_cifar().parameters()) == 11_173_962
    data = zoo.cifar_shaped(examples=64, test_examples=32, batch_size=32)
    x, y = data["train"][0]
    assert x.shape == (32, 3, 32, 32) and y.dtype == torch.int64
    assert zoo.resnet18_cifar(width=8)(x).shape == (32, 10)
    assert sum(b[1].numel() for b in data["test"]) == 32
    again = zoo.cifar_shaped(examples=64, test_examples=32, batch_size=32)
    assert torch.equal(again["train"][0][0], x)  # seeded: the same data every call


def test_a_saved_resnet_checkpoint_loads_from_its_builtin_names(tmp_path):
    model = zoo.resnet18_cifar(width=4)
    path = landscape.save(tmp_path / "r.pt", model, model_spec="resnet18_cifar", model_kwargs={"width": 4},
                          data_spec="cifar_shaped", data_kwargs={"examples": 32, "test_examples": 16},
                          loss="cross_entropy")
    problem, provenance = landscape.load_problem(path)
    assert provenance.trusted is False and problem.num_examples("train") == 32
    assert torch.equal(problem.params["0.weight"], model[0].weight.detach())


# ---------------------------------------------------------------------------- the transformer
def small_gpt() -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.tiny_gpt(vocab=5, context=6, width=8, depth=2, heads=2).double()


def test_tiny_gpt_shapes_and_parameter_names():
    model = zoo.tiny_gpt()
    tokens, _ = zoo.markov_copy(examples=8, test_examples=4, batch_size=8)["train"][0]
    assert tokens.shape == (8, 32) and model(tokens).shape == (8, 32, 16)
    # 0.10 M: 16·64 embedding + 32·64 positions + 2 blocks of 49,984 + LayerNorm 128 + head 1,040
    assert sum(p.numel() for p in model.parameters()) == 104_208
    names = [n for n, _ in model.named_parameters()]
    assert "blocks.1.attn.qkv.weight" in names and names[-1] == "head.bias"


def test_tiny_gpt_is_causal():
    model = small_gpt()
    tokens = torch.tensor([[0, 1, 2, 3, 4, 0]])
    changed = tokens.clone()
    changed[0, 3] = 1  # a token at position 3 may move the logits at positions ≥ 3 only
    before, after = model(tokens), model(changed)
    # masked scores get exactly zero weight, so positions < 3 agree up to float64 rounding
    torch.testing.assert_close(after[:, :3], before[:, :3], rtol=0, atol=1e-12)
    assert (after[:, 3:] - before[:, 3:]).abs().amax() > 1e-3


def test_markov_copy_is_seeded_and_its_second_half_copies_the_first():
    data = zoo.markov_copy(examples=40, test_examples=20, length=10, vocab=7, batch_size=16)
    again = zoo.markov_copy(examples=40, test_examples=20, length=10, vocab=7, batch_size=16)
    assert [len(b[1]) for b in data["train"]] == [16, 16, 8] and sum(len(b[1]) for b in data["test"]) == 20
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(data["train"], again["train"]))
    assert not torch.equal(zoo.markov_copy(seed=1)["train"][0][0], zoo.markov_copy()["train"][0][0])
    x, y = data["train"][0]
    assert x.shape == y.shape == (16, 10) and x.dtype == torch.int64 and int(x.max()) < 7
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one: next-token targets
    s = torch.cat([x, y[:, -1:]], 1)  # the whole sequence, 11 tokens: a walk of 6, then its copy
    assert torch.equal(s[:, 6:], s[:, :5])


def test_token_cross_entropy_is_the_mean_over_tokens_of_minus_log_softmax():
    from landscape.loading.specs import LOSSES

    logits = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.randint(5, (3, 4), generator=torch.Generator().manual_seed(1))
    manual = -sum(torch.log_softmax(logits[b, t], 0)[target[b, t]] for b in range(3) for t in range(4)) / 12
    torch.testing.assert_close(LOSSES["token_cross_entropy"](logits, target), manual, rtol=1e-12, atol=0)


def test_per_block_hessian_eigenvalues_of_tiny_gpt_match_the_dense_hessian():
    from landscape.loading.specs import token_cross_entropy
    from tests.curvature_cases import dense_hessian

    data = zoo.markov_copy(examples=12, test_examples=4, length=6, vocab=5, batch_size=6)
    problem = landscape.Problem.create(small_gpt(), token_cross_entropy, data)
    assert problem.has_accuracy  # [batch, seq, vocab] logits against [batch, seq] targets
    names = [n for n in problem.params if n.startswith("blocks.1.")]
    # autograd's loop of double backwards: torch.func.hessian (jacfwd over jacrev, vmapped)
    # returns a Hessian that is not even symmetric (0.017 off in the LayerNorm weight rows)
    exact = torch.linalg.eigvalsh(dense_hessian(problem, names, engine="autograd")).flip(0)[:3]
    eigs = landscape.hessian_eigs(problem, k=3, params=["blocks.1.*"])
    # float64 throughout; Lanczos stops at a relative Ritz residual of 1e-6, so eigenvalues
    # agree to ~1e-6 relative (1e-5 leaves room for the residual bound's constant)
    torch.testing.assert_close(eigs.eigenvalues, exact, rtol=1e-5, atol=1e-8)


def test_tiny_gpt_surfaces_agree_between_vmap_and_loop():
    from landscape.loading.specs import token_cross_entropy

    data = zoo.markov_copy(examples=16, test_examples=8, length=6, vocab=5, batch_size=8)
    lines = [landscape.random_line(landscape.Problem.create(small_gpt(), token_cross_entropy, data, eval_mode=mode),
                                   points=5, seed=0).values["train"]["loss"] for mode in ("vmap", "loop")]
    # the same float64 sums batched differently: equal to rounding
    np.testing.assert_allclose(lines[0], lines[1], rtol=1e-10)


def test_a_saved_tiny_gpt_loads_from_builtin_names_and_scans_a_user_npz(tmp_path):
    model = zoo.tiny_gpt(vocab=5, context=6, width=8, depth=1, heads=2)
    path = landscape.save(tmp_path / "gpt.pt", model, model_spec="tiny_gpt",
                          model_kwargs={"vocab": 5, "context": 6, "width": 8, "depth": 1, "heads": 2},
                          data_spec="markov_copy", data_kwargs={"examples": 24, "test_examples": 8,
                                                                "length": 6, "vocab": 5},
                          loss="token_cross_entropy")
    problem, provenance = landscape.load_problem(path)
    assert provenance.trusted is False and problem.num_examples("train") == 24
    # --data file.npz: the user's own sequences with the same model (x_train, y_train, ...)
    (x, y), = zoo.markov_copy(examples=10, test_examples=2, length=6, vocab=5, batch_size=10, seed=3)["train"]
    np.savez(tmp_path / "mine.npz", x_train=x.numpy(), y_train=y.numpy(), x_test=x[:4].numpy(), y_test=y[:4].numpy())
    problem, _ = landscape.load_problem(path, data=str(tmp_path / "mine.npz"))
    assert problem.num_examples("train") == 10 and problem.num_examples("test") == 4
    assert problem.has_accuracy
