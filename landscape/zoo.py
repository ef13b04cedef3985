"""Built-in models and data for the bundled examples (scikit-learn's digits, shipped as arrays).

Named in checkpoint metadata and on the command line as ``digits_mlp``, ``digits_cnn``,
``digits``, ``digits_images``, ``resnet18_cifar``, ``cifar_shaped``, ``tiny_gpt`` and
``markov_copy`` (short for ``landscape.zoo:<name>``). The last four are real shapes for scale
tests, written with ``torch.nn`` only: a ResNet-18 for 32×32×3 inputs with synthetic
CIFAR-shaped data from a teacher network, and a small decoder-only transformer with generated
token sequences (next-token targets; loss ``token_cross_entropy``, a named loss). To use your own arrays with
these models, pass ``--data file.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

Split = list[tuple[Tensor, Tensor]]


def _digits_arrays(images: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The fixed split of ``landscape/datasets/digits.npz``: scikit-learn's 1,797 digits (pixel
    values 0-16 as uint8) split by ``train_test_split(test_size=360, random_state=0,
    stratify=y)``, stored so that loading them needs no scikit-learn."""
    with np.load(Path(__file__).parent / "datasets" / "digits.npz") as arrays:
        parts = [torch.from_numpy(arrays[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
    x_tr, y_tr, x_te, y_te = parts
    shape = (-1, 1, 8, 8) if images else (-1, 64)
    return x_tr.to(torch.float32).div(16.0).reshape(shape), y_tr, x_te.to(torch.float32).div(16.0).reshape(shape), y_te


def _batched(x: Tensor, y: Tensor, batch_size: int) -> Split:
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(y), batch_size)]


def digits(batch_size: int = 512) -> dict[str, Split]:
    """Digits as flat 64-vectors in [0, 1]: 1437 train and 360 test examples (fixed split)."""
    x_tr, y_tr, x_te, y_te = _digits_arrays(images=False)
    return {"train": _batched(x_tr, y_tr, batch_size), "test": _batched(x_te, y_te, batch_size)}


def digits_images(batch_size: int = 512) -> dict[str, Split]:
    """Digits as 1×8×8 images, same split as :func:`digits`."""
    x_tr, y_tr, x_te, y_te = _digits_arrays(images=True)
    return {"train": _batched(x_tr, y_tr, batch_size), "test": _batched(x_te, y_te, batch_size)}


def digits_mlp(hidden: int = 32) -> nn.Module:
    """64 → hidden → hidden → 10 with tanh."""
    return nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, 10))


def digits_cnn(channels: int = 8) -> nn.Module:
    """Two 3×3 conv + BatchNorm + ReLU blocks, global average pool, linear head."""
    c = channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * c, 10),
    )


class BasicBlock(nn.Module):
    """Two 3×3 conv + BatchNorm layers with an identity (or 1×1 conv + BN) shortcut."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))

    def forward(self, x: Tensor) -> Tensor:
        """relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))."""
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet18_cifar(width: int = 64, num_classes: int = 10) -> nn.Module:
    """ResNet-18 for 32×32×3 inputs (3×3 stem, no max-pool; stages of 2 blocks at width,
    2·width, 4·width, 8·width): 11.2 M parameters at width 64, 0.7 M at 16, 0.18 M at 8."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    inputs = width
    for stage, stride in enumerate((1, 2, 2, 2)):
        outputs = width * 2 ** stage
        layers += [BasicBlock(inputs, outputs, stride), BasicBlock(outputs, outputs, 1)]
        inputs = outputs
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inputs, num_classes)]
    return nn.Sequential(*layers)


def cifar_shaped(examples: int = 512, test_examples: int = 256, batch_size: int = 128,
                 seed: int = 0) -> dict[str, Split]:
    """Synthetic 3×32×32 images (Gaussian) labelled by a fixed random teacher (a linear map of
    4×4-pooled pixels, 10 classes): the shapes and cost of CIFAR-10, generated locally."""
    generator = torch.Generator().manual_seed(seed)
    teacher = torch.randn(3 * 8 * 8, 10, generator=generator)

    def make(n: int) -> tuple[Tensor, Tensor]:
        x = torch.randn(n, 3, 32, 32, generator=generator)
        pooled = nn.functional.avg_pool2d(x, 4).flatten(1)
        return x, (pooled @ teacher).argmax(1)

    (x_tr, y_tr), (x_te, y_te) = make(examples), make(test_examples)
    return {"train": _batched(x_tr, y_tr, batch_size), "test": _batched(x_te, y_te, batch_size)}


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position i sees positions ≤ i only. Written out (not
    ``nn.MultiheadAttention``) so that every op has the double-backward and batching rules
    Hessian-vector products and ``vmap`` need."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        """[batch, seq, width] → [batch, seq, width]."""
        batch, seq, width = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        scores = q @ k.transpose(-2, -1) / math.sqrt(width // self.heads)
        future = torch.ones(seq, seq, dtype=torch.bool, device=x.device).triu(1)
        weights = scores.masked_fill(future, float("-inf")).softmax(-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(batch, seq, width))


class DecoderBlock(nn.Module):
    """Pre-LayerNorm block: x + attn(ln1 x), then + mlp(ln2 x) (4× wide, GELU)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: Tensor) -> Tensor:
        """[batch, seq, width] → [batch, seq, width]."""
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """Token embedding + learned positions, ``depth`` decoder blocks, final LayerNorm, LM head."""

    def __init__(self, vocab: int, context: int, width: int, depth: int, heads: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab, width)
        self.position = nn.Parameter(0.02 * torch.randn(context, width))
        self.blocks = nn.ModuleList(DecoderBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        """Token ids [batch, seq ≤ context] → next-token logits [batch, seq, vocab]."""
        x = self.token(tokens) + self.position[: tokens.shape[-1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def tiny_gpt(vocab: int = 16, context: int = 32, width: int = 64, depth: int = 2, heads: int = 4) -> nn.Module:
    """A decoder-only transformer (GPT-style, pre-LN); parameters are named ``token.weight``,
    ``position``, ``blocks.<i>.{ln1,attn.qkv,attn.proj,ln2,mlp}.*``, ``norm.*``, ``head.*``
    (so ``--params 'blocks.0.*'`` selects one block): 0.10 M parameters by default."""
    return TinyGPT(vocab, context, width, depth, heads)


def markov_copy(examples: int = 1024, test_examples: int = 256, length: int = 32, vocab: int = 16,
                batch_size: int = 128, seed: int = 0) -> dict[str, Split]:
    """Token sequences with next-token targets (x = s[:-1], y = s[1:], each [n, length] int64):
    the first half of s is a walk on a fixed random Markov chain (each token has a few likely
    successors: learnable from bigrams), the second half repeats the first (learnable only by
    attending back: an induction task)."""
    generator = torch.Generator().manual_seed(seed)
    transitions = (3.0 * torch.randn(vocab, vocab, generator=generator)).softmax(-1)

    def make(n: int) -> tuple[Tensor, Tensor]:
        half = length // 2 + 1  # s: length + 1 tokens, the walk then its copy (cut)
        walk = torch.empty(n, half, dtype=torch.int64)
        walk[:, 0] = torch.randint(vocab, (n,), generator=generator)
        for i in range(1, half):
            walk[:, i] = torch.multinomial(transitions[walk[:, i - 1]], 1, generator=generator).squeeze(1)
        s = torch.cat([walk, walk], 1)[:, : length + 1]
        return s[:, :-1].contiguous(), s[:, 1:].contiguous()

    (x_tr, y_tr), (x_te, y_te) = make(examples), make(test_examples)
    return {"train": _batched(x_tr, y_tr, batch_size), "test": _batched(x_te, y_te, batch_size)}


BUILTINS = {
    "digits": digits,
    "digits_images": digits_images,
    "digits_mlp": digits_mlp,
    "digits_cnn": digits_cnn,
    "resnet18_cifar": resnet18_cifar,
    "cifar_shaped": cifar_shaped,
    "tiny_gpt": tiny_gpt,
    "markov_copy": markov_copy,
}
