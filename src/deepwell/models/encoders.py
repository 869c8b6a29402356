"""Per-column-type encoders. Each maps its input tensor to a [batch, output_dim] float tensor."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from deepwell.models.dropout import Dropout


class NumericEncoder(nn.Module):
    """The concatenated numeric block goes to the trunk as it is: it is already standardised."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.output_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class PeriodicNumericEncoder(nn.Module):
    """Periodic embeddings of numbers (Gorishniy et al., 2022, "PLR"): each value x becomes
    ReLU(W_f [cos(2π c_f x), sin(2π c_f x)] + b_f) with trainable frequencies c_f per feature f.

    Lets an MLP fit sharp, non-monotonic effects of a single number that a linear first layer cannot. `sigma`
    is the spread of the initial frequencies: one value for all, or (low, high) to spread the frequencies of each
    number log-evenly from low to high, so one embedding holds smooth and sharp components.
    """

    def __init__(self, width: int, frequencies: int = 16, dim: int = 16,
                 sigma: float | tuple[float, float] = 0.1) -> None:
        super().__init__()
        low, high = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
        scales = torch.logspace(math.log10(low), math.log10(high), frequencies)
        self.frequencies = nn.Parameter(torch.randn(width, frequencies) * scales)
        bound = 1 / math.sqrt(2 * frequencies)
        self.weight = nn.Parameter(torch.empty(width, 2 * frequencies, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(width, dim).uniform_(-bound, bound))
        self.output_dim = width * dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * self.frequencies * x.unsqueeze(-1)
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        embedded = torch.einsum("bfk,fkd->bfd", features, self.weight) + self.bias
        return torch.relu(embedded).flatten(1)


class PiecewiseLinearNumericEncoder(nn.Module):
    """Piecewise-linear embeddings of numbers (Gorishniy et al., 2022, "Q-L", their version B): bin edges are
    training-split quantiles of each number; value x fills the bins below it (1), the bin it falls in (its
    position there, 0–1) and none above (0), the first and last bin extrapolating. Each number then becomes
    W_f x + b_f + V_f · bins(x) with V_f started at zero, so training starts from a linear embedding and learns
    the thresholds a tree would split on.

    `edges` (per numeric input, ascending, at least two) come from `Preprocessor.numeric_edges` and are saved in
    the architecture, so a loaded model encodes exactly as it trained.
    """

    def __init__(self, edges: list[list[float]], dim: int = 16) -> None:
        super().__init__()
        width, bins = len(edges), max(len(e) - 1 for e in edges)
        left = torch.zeros(width, bins)
        span = torch.ones(width, bins)
        low = torch.zeros(width, bins)
        high = torch.ones(width, bins)
        used = torch.zeros(width, bins)
        for f, values in enumerate(edges):
            e = torch.tensor(values, dtype=torch.float32)
            n = len(values) - 1
            left[f, :n], span[f, :n], used[f, :n] = e[:-1], (e[1:] - e[:-1]).clamp_min(1e-6), 1.0
            low[f, 0], high[f, n - 1] = -math.inf, math.inf  # the outer bins extrapolate
        for name, value in (("left", left), ("span", span), ("low", low), ("high", high), ("used", used)):
            self.register_buffer(name, value, persistent=False)
        bound = 1 / math.sqrt(2)
        self.weight = nn.Parameter(torch.empty(width, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(width, dim).uniform_(-bound, bound))
        self.bins = nn.Parameter(torch.zeros(width, bins, dim))
        self.output_dim = width * dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        position = (x.unsqueeze(-1) - self.left) / self.span
        encoded = torch.minimum(torch.maximum(position, self.low), self.high) * self.used
        linear = x.unsqueeze(-1) * self.weight + self.bias
        return (linear + torch.einsum("bft,ftd->bfd", encoded, self.bins)).flatten(1)


def quantile_edges(block: np.ndarray, bins: int = 48) -> list[list[float]]:
    """Per column of a numeric block, up to `bins` + 1 distinct training quantiles as bin edges (a constant
    column gets one unit bin)."""
    edges = []
    for column in block.T:
        values = np.unique(np.round(np.quantile(column, np.linspace(0, 1, bins + 1)), 6)) if len(column) else []
        if len(values) < 2:
            values = [values[0], values[0] + 1.0] if len(values) else [0.0, 1.0]
        edges.append([float(v) for v in values])
    return edges


class CategoryEncoder(nn.Module):
    """One learned vector per category, started small for the reason the bag of tokens gives (suite, tune
    part, N(0, 1) → N(0, 0.1²): chile 0.6632 → 0.6684 accuracy, slid and star RMSE 0.5% and 0.8% lower, adult
    unchanged)."""

    def __init__(self, num_embeddings: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, dim)
        nn.init.normal_(self.embedding.weight, std=BagOfTokensEncoder.INITIAL_STD)  # as for tokens, see there
        self.dropout = Dropout(dropout)
        self.output_dim = dim

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embedding(codes))


class BagOfTokensEncoder(nn.Module):
    """Pooled token (and token n-gram) embeddings, padding excluded: fast and strong on short texts.

    Rows start at N(0, 0.1²): with Adam each step moves a row by about the learning rate (1e-2 for embeddings),
    so from torch's N(0, 1) a rare token's row stays mostly random noise (suite, debian-packages: 0.648 test
    accuracy at N(0, 1), 0.713 at N(0, 0.1²), 0.700 at N(0, 0.02²)).

    `pooling`: mean (the sum over n ids / n) or sqrt (the sum / √n). √n keeps a text's evidence growing with its
    length — as TF-IDF's L2 norm does — where the mean dilutes a few telling tokens among many plain ones; with
    rows at N(0, σ²) both start at the scale of one row.
    """

    INITIAL_STD = 0.1

    def __init__(self, num_embeddings: int, dim: int, dropout: float = 0.0, split: int | None = None,
                 pooling: Literal["mean", "sqrt"] = "mean") -> None:
        """`split`: the ids from this column on (a text's character n-grams) are pooled apart from those
        before it, and the two concatenated."""
        super().__init__()
        if pooling not in ("mean", "sqrt"):
            raise ValueError(f"bag pooling must be 'mean' or 'sqrt', got {pooling!r}")
        self.bag = nn.EmbeddingBag(num_embeddings, dim, mode="sum", padding_idx=0)
        with torch.no_grad():  # small, so training moves the rows a token touches (torch's N(0, 1) drowns them)
            nn.init.normal_(self.bag.weight, std=self.INITIAL_STD)
            self.bag.weight[0].zero_()
        self.dropout = Dropout(dropout)
        self.split = split
        self.pooling = pooling
        self.output_dim = dim * (2 if split else 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.split:
            return self.dropout(torch.cat([self._pool(tokens[:, :self.split]), self._pool(tokens[:, self.split:])], 1))
        return self.dropout(self._pool(tokens))

    def id_weight(self, ids: torch.Tensor) -> torch.Tensor:
        """[rows, 1]: what each non-padding id's vector is multiplied by in its row's pooled vector."""
        count = (ids != 0).sum(dim=1, keepdim=True).clamp_min(1).to(self.bag.weight.dtype)
        return 1 / (count if self.pooling == "mean" else count.sqrt())

    def _pool(self, ids: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the non-padding ids' rows; spelled as a lookup and a masked sum while exporting to
        ONNX, which has no EmbeddingBag with a padding index (the same numbers)."""
        if not torch.onnx.is_in_onnx_export():
            return self.bag(ids) * self.id_weight(ids)
        vectors = nn.functional.embedding(ids, self.bag.weight)
        mask = (ids != 0).unsqueeze(-1).to(vectors.dtype)
        return (vectors * mask).sum(dim=1) * self.id_weight(ids)


def build_encoder(spec: dict[str, Any], dropout: float, numeric_embedding: str = "none",
                  periodic_scale: float | tuple[float, float] = 0.1) -> nn.Module:
    kind = spec["kind"]
    if kind == "numeric":
        if numeric_embedding == "periodic":
            return PeriodicNumericEncoder(int(spec["width"]), sigma=periodic_scale)
        if numeric_embedding == "piecewise":
            if "edges" not in spec:
                raise ValueError("numeric_embedding 'piecewise' needs the numeric block's bin edges "
                                 "(Preprocessor.numeric_edges); this architecture was saved without them")
            return PiecewiseLinearNumericEncoder(spec["edges"])
        return NumericEncoder(int(spec["width"]))
    if kind == "vector":  # precomputed embeddings (e.g. a frozen pretrained encoder): used as they are
        return NumericEncoder(int(spec["width"]))
    if kind == "embedding":
        return CategoryEncoder(int(spec["num_embeddings"]), int(spec["dim"]), dropout)
    if kind == "bag":
        return BagOfTokensEncoder(int(spec["num_embeddings"]), int(spec["dim"]), dropout, spec.get("split"),
                                  spec.get("pooling", "mean"))
    if kind in ("text_cnn", "text_transformer"):
        from deepwell.models.text import TextCNNEncoder, TextTransformerEncoder
        return (TextCNNEncoder if kind == "text_cnn" else TextTransformerEncoder)(spec, dropout)
    if kind.startswith("pretrained_"):
        from deepwell.models import pretrained
        encoder = {"pretrained_text": pretrained.PretrainedTextEncoder,
                   "pretrained_image": pretrained.PretrainedImageEncoder,
                   "pretrained_audio": pretrained.PretrainedAudioEncoder}[kind]
        return encoder(spec, load_weights=not spec.get("saved", False))
    if kind == "image":
        from deepwell.models.vision import ImageEncoder
        return ImageEncoder(spec)
    if kind == "audio":
        from deepwell.models.audio import AudioEncoder
        return AudioEncoder(spec)
    raise ValueError(f"unknown encoder kind {kind!r}")
