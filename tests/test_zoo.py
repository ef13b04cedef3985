"""The built-in models at real shapes: ResNet-18 for 32×32×3 inputs and CIFAR-shaped data."""

from __future__ import annotations

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
