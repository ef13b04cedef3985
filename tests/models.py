"""Small real models and data used across the tests (also reachable as CLI specs,
e.g. ``--model tests.models:mlp`` or ``--model tests/models.py:mlp``).

Every factory is deterministic (fixed seeds), so a subprocess and the test process
build bit-identical models and data.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NUM_CLASSES = 3


# ---------------------------------------------------------------------------- models
class MLP(nn.Module):
    def __init__(self, inputs: int = 6, hidden: int = 7, classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


class CNNBN(nn.Module):
    """Conv + BatchNorm + ReLU twice, average pool, linear head (1×6×6 images)."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * channels)
        self.head = nn.Linear(2 * channels, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean(dim=(2, 3)))


class RNNClassifier(nn.Module):
    """An LSTM (or GRU) over a [B, T, F] sequence, classifying from the last state."""

    def __init__(self, cell: str = "lstm", features: int = 4, hidden: int = 5) -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class TinyTransformer(nn.Module):
    """Token embedding + one pre-norm TransformerEncoder layer + mean pool + head."""

    def __init__(self, vocab: int = 11, width: int = 8, heads: int = 2, length: int = 5) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(length, width) * 0.1)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=16, dropout=0.1,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = nn.Linear(width, NUM_CLASSES)

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.encoder(self.embed(tokens) + self.position)
        return self.head(h.mean(dim=1))


class DictInputModel(nn.Module):
    """Called as ``model(image=..., extra=...)``: batches are dicts with a 'label' key."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Linear(6, 4)
        self.extra = nn.Linear(2, 4)
        self.head = nn.Linear(4, NUM_CLASSES)

    def forward(self, image: Tensor, extra: Tensor) -> Tensor:
        return self.head(torch.relu(self.image(image) + self.extra(extra)))


class DropoutMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(16, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


class NoVmapMLP(MLP):
    """An MLP whose forward reads a value with ``.item()``: vmap cannot batch it."""

    def forward(self, x: Tensor) -> Tensor:
        scale = 1.0 + 0.0 * float(self.fc1.weight.sum().item())
        return super().forward(x) * scale


class ExpModel(nn.Module):
    """Logits exp(W x): far from θ* the loss overflows to inf/NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return torch.exp(self.fc(x))


class LogSoftmaxMLP(MLP):
    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(super().forward(x), dim=-1)


class Recorder(NoVmapMLP):
    """Appends a fingerprint of the parameters it is called with to $LANDSCAPE_TEST_LOG and
    sleeps a little per call, so a scan of it is slow enough to be killed half-way.
    It cannot be vmapped, so each call is one parameter point on one batch."""

    def forward(self, x: Tensor) -> Tensor:
        log = os.environ.get("LANDSCAPE_TEST_LOG")
        if log:
            fingerprint = float(self.fc1.weight.double().sum()) + math.pi * float(self.fc2.weight.double().sum())
            with open(log, "a") as handle:
                handle.write(f"{fingerprint!r}\n")
        delay = float(os.environ.get("LANDSCAPE_TEST_DELAY", "0"))
        if delay:
            import time
            time.sleep(delay)
        return super().forward(x)


def seeded(factory, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return factory(**kwargs)


def mlp() -> nn.Module:
    return seeded(MLP)


def mlp_other_seed() -> nn.Module:
    return seeded(MLP, seed=1)


def cnn_bn() -> nn.Module:
    return seeded(CNNBN)


def lstm() -> nn.Module:
    return seeded(RNNClassifier, cell="lstm")


def gru() -> nn.Module:
    return seeded(RNNClassifier, cell="gru")


def transformer() -> nn.Module:
    return seeded(TinyTransformer)


def dict_model() -> nn.Module:
    return seeded(DictInputModel)


def dropout_mlp() -> nn.Module:
    return seeded(DropoutMLP)


def exp_model() -> nn.Module:
    return seeded(ExpModel)


def log_softmax_mlp() -> nn.Module:
    return seeded(LogSoftmaxMLP)


def recorder() -> nn.Module:
    return seeded(Recorder)


def trained_bn_state(model: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> nn.Module:
    """Give BatchNorm layers non-trivial running statistics (a few train-mode passes)."""
    model.train()
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    return model.eval()


# ---------------------------------------------------------------------------- data
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def teacher_labels(x: Tensor, seed: int = 123) -> Tensor:
    """Labels of a random linear teacher (a learnable, non-trivial task)."""
    w = torch.randn(x.reshape(len(x), -1).shape[1], NUM_CLASSES, generator=_gen(seed), dtype=torch.float64)
    return (x.reshape(len(x), -1).double() @ w).argmax(dim=1)


def vectors(n: int = 30, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    x = torch.randn(n, 6, generator=_gen(seed), dtype=torch.float64)
    return x.to(dtype), teacher_labels(x)


def batches(x: Tensor, y: Tensor, sizes: list[int]) -> list[tuple[Tensor, Tensor]]:
    """Uneven batch sizes on purpose: the empirical risk must weight by batch size."""
    out, start = [], 0
    for size in sizes:
        out.append((x[start:start + size], y[start:start + size]))
        start += size
    assert start == len(y)
    return out


def vector_data(batch_size: int = 16) -> dict[str, list[tuple[Tensor, Tensor]]]:
    """Train (30 examples, batches 16 + 14 by default) and test (12) splits of 6-vectors."""
    x, y = vectors(30, seed=0)
    xt, yt = vectors(12, seed=1)
    return {"train": [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, 30, batch_size)],
            "test": [(xt, yt)]}


def vector_pair() -> tuple[list, list]:
    """The same data as a (train, test) tuple."""
    splits = vector_data()
    return splits["train"], splits["test"]


def vector_loader() -> torch.utils.data.DataLoader:
    x, y = vectors(30, seed=0)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def vector_float_labels() -> list[tuple[Tensor, Tensor]]:
    x, y = vectors(30, seed=0)
    return [(x, y.float())]


def vector_empty() -> list:
    return []


def image_data() -> dict[str, list[tuple[Tensor, Tensor]]]:
    x = torch.randn(24, 1, 6, 6, generator=_gen(2)) * 2 + 0.5
    y = teacher_labels(x)
    return {"train": [(x[:10], y[:10]), (x[10:], y[10:])]}


def sequence_data() -> dict[str, list[tuple[Tensor, Tensor]]]:
    x = torch.randn(20, 5, 4, generator=_gen(3))
    y = teacher_labels(x)
    return {"train": [(x[:12], y[:12]), (x[12:], y[12:])]}


def token_data() -> dict[str, list[tuple[Tensor, Tensor]]]:
    tokens = torch.randint(0, 11, (18, 5), generator=_gen(4))
    y = teacher_labels(tokens.double())
    return {"train": [(tokens[:10], y[:10]), (tokens[10:], y[10:])]}


def dict_data() -> dict[str, list[dict[str, Tensor]]]:
    x = torch.randn(20, 8, generator=_gen(5))
    y = teacher_labels(x)
    return {"train": [{"image": x[s, :6], "extra": x[s, 6:], "label": y[s]}
                      for s in (slice(0, 12), slice(12, 20))]}


def regression_data() -> dict[str, list[tuple[Tensor, Tensor]]]:
    x, _ = vectors(30, seed=6)
    target = torch.randn(30, NUM_CLASSES, generator=_gen(7))
    return {"train": [(x[:16], target[:16]), (x[16:], target[16:])]}


def binary_data() -> dict[str, list[tuple[Tensor, Tensor]]]:
    x, _ = vectors(30, seed=8)
    target = (torch.randn(30, NUM_CLASSES, generator=_gen(9)) > 0).float()
    return {"train": [(x[:16], target[:16]), (x[16:], target[16:])]}


def slow_data() -> dict[str, list[tuple[Tensor, Tensor]]]:
    """Two train batches, no test split (for the kill/resume test)."""
    x, y = vectors(20, seed=0)
    return {"train": [(x[:10], y[:10]), (x[10:], y[10:])]}


# ---------------------------------------------------------------------------- losses
def smooth_cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """A user-defined (callable) loss: label-smoothed cross-entropy."""
    return F.cross_entropy(output, target, label_smoothing=0.1)


def linear() -> nn.Module:
    """A linear model: with MSE its loss is a quadratic in θ with a closed form."""
    return seeded(nn.Linear, in_features=6, out_features=NUM_CLASSES)


def item_loss(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy that reads a Python float mid-way: vmap cannot batch it."""
    shift = 0.0 * float(output.detach().sum())
    return F.cross_entropy(output + shift, target)


class NoVmapNoJvpTanh(torch.autograd.Function):
    """tanh with a backward only: no vmap rule and no forward-mode derivative (jvp)."""

    @staticmethod
    def forward(x):
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * (1 - y * y)
