"""Integrated Gradients (Sundararajan et al., 2017) with Captum, per input column of a deepwell network.

The path runs at the encoders' outputs: every input's encoder maps the row and its baseline to vectors, Captum's
LayerIntegratedGradients averages the gradients along the straight line between the two (all encoders, and all
members of an ensemble, at once), and a column's attribution is (encoded row − encoded baseline) · that average. So
categories and text go through their embeddings, the attributions of a row sum to f(row) − f(baseline) (completeness,
up to the quadrature error that `delta` reports), and a numeric block splits into its numbers exactly.

Baselines (what "no information" is for each input):
- numbers and dates: 0 after standardisation — the training mean; yes/no columns: halfway between the two values
- categories: the unknown-category bucket (a level never seen in training)
- text: the empty text (all padding); a bag of tokens splits its attribution over the row's tokens exactly; a CNN
  or transformer gets per-token shares from a pass on its token vectors alone (adding up to that text's effect
  of its tokens' vectors against zero vectors)
- images: a black image; audio: silence — each also gets a saliency map (Integrated Gradients on the normalised
  pixels or log-mel spectrogram the CNN reads, images × pixels or mel bands × frames)
- precomputed embeddings (a frozen pretrained encoder): the zero vector

The output explained is P(class) — the positive class for two classes, the predicted class otherwise — or the
predicted value in the target's units for regression.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from deepwell.errors import ConfigError
from deepwell.features.category import UNKNOWN
from deepwell.features.pipeline import NUMERIC_BLOCK, Preprocessor
from deepwell.models.encoders import BagOfTokensEncoder

STEPS = 32  # Gauss–Legendre points on the path to start with
MAX_STEPS = 512  # …raised 4× at a time while the completeness error exceeds TOLERANCE
TOLERANCE = 0.005  # of a probability (or of the target's standard deviation)
BASELINES = {"numeric": "the training mean (0 after standardisation)", "binary": "halfway between its two values",
             "datetime": "the training mean date", "vector": "the zero embedding",
             "embedding": "an unseen category", "bag": "the empty text", "text_cnn": "the empty text",
             "text_transformer": "the empty text", "pretrained_text": "the empty text", "image": "a black image",
             "pretrained_image": "a black image", "audio": "silence", "pretrained_audio": "silence"}
MAPPED = ("image", "audio")  # encoders with a CNN whose input gets a saliency map
SEQUENCE_TEXT = ("text_cnn", "text_transformer")  # token embeddings feed a network: tokens by their own pass


@dataclass
class Attributions:
    columns: list[str]  # input columns, in the model's order
    values: np.ndarray  # [rows, columns]: each column's share of output − baseline_output
    output: np.ndarray  # f(row): the explained probability or value
    baseline_output: np.ndarray  # f(baseline)
    explained: list[str]  # per row: what f is ("P(>50K)", "price")
    baselines: dict[str, str]  # per column: its baseline in words
    tokens: dict[str, list[list[tuple[str, float]]]] = field(default_factory=dict)  # text column → per row
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # image/audio column → [rows, height, width]
    backgrounds: dict[str, np.ndarray] = field(default_factory=dict)  # what the map lies on: grey image, log-mel
    steps: int = STEPS  # the steps the path took (more than asked when completeness needed them)

    @property
    def delta(self) -> np.ndarray:
        """Completeness error per row: Σ attributions − (f(row) − f(baseline))."""
        return self.values.sum(axis=1) - (self.output - self.baseline_output)


def _captum() -> Any:
    try:
        import captum.attr
    except ImportError:
        raise ConfigError("Explanations need captum: pip install 'deepwell[explain]'.") from None
    return captum.attr


def integrated_gradients(network: nn.Module, preprocessor: Preprocessor, inputs: dict[str, torch.Tensor],
                         targets: np.ndarray | None, device: torch.device, steps: int = STEPS,
                         maps: bool = True) -> Attributions:
    """Attributions of the rows in `inputs` (a preprocessed batch). `targets`: the class index explained per row
    (None for regression). A batch whose completeness error exceeds TOLERANCE (a sharp model: its output jumps
    along the path) is integrated again with 4× the steps, up to MAX_STEPS."""
    attr = _captum()
    network.eval()
    members = list(network.members) if hasattr(network, "members") else [network]
    keys = list(inputs)
    row = tuple(inputs[k].to(device) for k in keys)
    base = tuple(_baseline(k, inputs[k], preprocessor).to(device) for k in keys)
    forward = _forward(network, keys, preprocessor, targets is None)
    target = None if targets is None else torch.as_tensor(targets, device=device)
    with torch.no_grad():
        out, out_base = forward(*row), forward(*base)
        if target is not None:
            out, out_base = out.gather(1, target[:, None])[:, 0], out_base.gather(1, target[:, None])[:, 0]
    gap, tolerance = (out - out_base).cpu().numpy(), _tolerance(preprocessor)
    path = _Path(attr, forward, members, keys, row, base, target, preprocessor)
    values, tokens = path.columns(steps)
    while np.abs(values.sum(axis=1) - gap).max() > tolerance and steps < MAX_STEPS:
        steps *= 4
        values, tokens = path.columns(steps)
    for key in keys:
        if _spec(preprocessor, key)["kind"] in SEQUENCE_TEXT:
            tokens[_owner(preprocessor, key)] = path.sequence_tokens(key, steps, tolerance)
    result = Attributions(preprocessor.input_columns, values, out.cpu().numpy(), out_base.cpu().numpy(),
                          _explained(preprocessor, targets, len(values)), _baselines(preprocessor), tokens,
                          steps=steps)
    if maps:
        result.maps, result.backgrounds = path.saliency(steps)
    return result


def _tolerance(preprocessor: Preprocessor) -> float:
    """Completeness error allowed: 0.005 of a probability, or of the target's standard deviation."""
    target = preprocessor.target
    return TOLERANCE * (float(target.std or 1.0) if target.task.is_regression else 1.0)


def _owner(preprocessor: Preprocessor, key: str) -> str:
    return next(f.name for f in preprocessor.features if f.key == key)


@dataclass
class _Path:
    """The straight path from the baseline to a batch of rows, and the Integrated Gradients taken along it."""

    attr: Any
    forward: Any
    members: list[nn.Module]
    keys: list[str]
    row: tuple[torch.Tensor, ...]
    base: tuple[torch.Tensor, ...]
    target: torch.Tensor | None
    preprocessor: Preprocessor

    def _integrate(self, layers: list[nn.Module], steps: int, multiply_by_inputs: bool = True, **options: Any) -> Any:
        """Captum's LayerIntegratedGradients over `layers` (their outputs, or inputs with
        `attribute_to_layer_input`); without `multiply_by_inputs`, the path-averaged gradients alone."""
        with warnings.catch_warnings():  # "Multiple layers provided": ours are side by side, none feeds another
            warnings.filterwarnings("ignore", message="Multiple layers provided")
            method = self.attr.LayerIntegratedGradients(self.forward, layers, multiply_by_inputs=multiply_by_inputs)
            return method.attribute(self.row, baselines=self.base, target=self.target, n_steps=steps,
                                    internal_batch_size=max(64, len(self.row[0]) * 4), **options)

    def columns(self, steps: int) -> tuple[np.ndarray, dict[str, list[list[tuple[str, float]]]]]:
        """Each column's share, and a bag of tokens' share per token."""
        pairs = [(m, k) for m in self.members for k in self.keys]
        gradients = self._integrate([m.encoders[k] for m, k in pairs], steps, multiply_by_inputs=False)
        columns = self.preprocessor.input_columns
        values = np.zeros((len(self.row[0]), len(columns)))
        tokens: dict[str, list[list[tuple[str, float]]]] = {}
        with torch.no_grad():
            for (member, key), g in zip(pairs, gradients, strict=True):
                encoder, x = member.encoders[key], self.row[self.keys.index(key)]
                share = (encoder(x) - encoder(self.base[self.keys.index(key)])) * g.detach()
                _add(values, columns, self.preprocessor, key, share.cpu().numpy())
                if isinstance(encoder, BagOfTokensEncoder):
                    _add_tokens(tokens, self.preprocessor, key, encoder, x, g.detach())
        return values, tokens

    def sequence_tokens(self, key: str, steps: int, tolerance: float) -> list[list[tuple[str, float]]]:
        """A CNN's or transformer's text: Integrated Gradients on its token vectors alone (the rest of the row as it
        is, and the text's padding mask too), so a row's token shares add up to f(row) − f(row with its tokens'
        vectors at zero, the padding vector)."""
        layers = [member.encoders[key].embedding for member in self.members]
        while True:
            found, delta = self._integrate(layers, steps, return_convergence_delta=True)
            if float(delta.abs().max()) <= tolerance or steps >= MAX_STEPS:
                break
            steps *= 4
        found = found if isinstance(found, list) else [found]
        per_position = sum(a.detach().sum(dim=2) for a in found).cpu()
        feature = next(f for f in self.preprocessor.features if f.key == key)
        ids = self.row[self.keys.index(key)].cpu()
        return [[(feature.tokenizer.id_to_token(int(ids[r, p])) or "?", float(per_position[r, p]))
                 for p in torch.nonzero(ids[r]).flatten().tolist()] for r in range(len(ids))]

    def saliency(self, steps: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per image/audio column, Integrated Gradients on what its CNN reads (normalised pixels, log-mel bands ×
        frames), summed over channels and members: [rows, height, width]; and what that is, scaled to 0–1 per row
        (the grey image, the log-mel spectrogram) for the pictures."""
        maps: dict[str, np.ndarray] = {}
        backgrounds: dict[str, np.ndarray] = {}
        for key in self.keys:
            if _spec(self.preprocessor, key)["kind"] not in MAPPED:
                continue
            found = self._integrate([m.encoders[key].cnn for m in self.members], steps,
                                    attribute_to_layer_input=True)
            found = found if isinstance(found, list) else [found]
            total = sum(a[0] if isinstance(a, tuple) else a for a in found)
            owner = _owner(self.preprocessor, key)
            maps[owner] = total.detach().sum(dim=1).cpu().numpy()
            x = self.row[self.keys.index(key)]
            with torch.no_grad():
                seen = x.float().mean(dim=1) if x.dim() == 4 else self.members[0].encoders[key].logmel(x)
            low = seen.flatten(1).min(dim=1).values[:, None, None]
            high = seen.flatten(1).max(dim=1).values[:, None, None]
            backgrounds[owner] = ((seen - low) / (high - low).clamp_min(1e-6)).cpu().numpy()
        return maps, backgrounds


def _forward(network: nn.Module, keys: list[str], preprocessor: Preprocessor, regression: bool) -> Any:
    target = preprocessor.target

    def forward(*tensors: torch.Tensor) -> torch.Tensor:
        out = network(dict(zip(keys, tensors, strict=True))).float()
        if regression:  # in the target's units, so attributions read as "raised the price by 12"
            return target.unscale(out[:, 0])
        return out.softmax(dim=1)

    return forward


def _baseline(key: str, tensor: torch.Tensor, preprocessor: Preprocessor) -> torch.Tensor:
    if key == NUMERIC_BLOCK:  # standardised numbers: 0, the mean; a yes/no column: halfway (features' `baseline`)
        values = [v for f in preprocessor.features if f.block == NUMERIC_BLOCK
                  for v in (f.baseline() if hasattr(f, "baseline") else [0.0] * len(f.output_names()))]
        return torch.tensor(values, dtype=tensor.dtype).expand_as(tensor).clone()
    if tensor.is_floating_point():
        return torch.zeros_like(tensor)  # images: black; audio: silence; precomputed embeddings: zero
    kind = _spec(preprocessor, key)["kind"]
    return torch.full_like(tensor, UNKNOWN) if kind == "embedding" else torch.zeros_like(tensor)


def _spec(preprocessor: Preprocessor, key: str) -> dict[str, Any]:
    return preprocessor.encoder_specs()[key]


def _add(values: np.ndarray, columns: list[str], preprocessor: Preprocessor, key: str, share: np.ndarray) -> None:
    """Sum an encoder's output shares into its column(s): a numeric block per number, else the key's feature."""
    if key == NUMERIC_BLOCK:
        owners = [f.name for f in preprocessor.features if f.block == NUMERIC_BLOCK for _ in f.output_names()]
        per_number = share.reshape(len(share), len(owners), -1).sum(axis=2)
        for position, owner in enumerate(owners):
            values[:, columns.index(owner)] += per_number[:, position]
        return
    owner = next(f.name for f in preprocessor.features if f.key == key)
    values[:, columns.index(owner)] += share.sum(axis=1)


def _add_tokens(tokens: dict[str, list[list[tuple[str, float]]]], preprocessor: Preprocessor, key: str,
                encoder: BagOfTokensEncoder, ids: torch.Tensor, gradient: torch.Tensor) -> None:
    """A bag is a weighted sum of token vectors, so its share splits over the row's ids exactly: id t in a row gets
    (E[t] · its weight, 1/n or 1/√n) · gradient. A token n-gram's share goes to its n words evenly; character
    n-grams are one entry."""
    feature = next(f for f in preprocessor.features if f.key == key)
    dim, words = encoder.bag.embedding_dim, feature.words
    split = encoder.split or ids.shape[1]
    parts = [(ids[:, :split], gradient[:, :dim])] + ([(ids[:, split:], gradient[:, dim:])] if encoder.split else [])
    shares = []
    for chunk, g in parts:
        weight = encoder.id_weight(chunk)
        shares.append(((encoder.bag.weight[chunk] * g[:, None, :]).sum(dim=2) * weight * (chunk != 0)).cpu())
    per_word = shares[0][:, :words].clone()
    offset = words
    for n in range(2, feature.text.ngrams + 1 if len(feature.ngram_keys) else 2):  # word n-grams, as transform
        width = max(0, words - n + 1)
        for k in range(n):
            per_word[:, k:k + width] += shares[0][:, offset:offset + width] / n
        offset += width
    ids = ids.cpu()
    per_row = []
    for r in range(len(ids)):
        found = [(feature.tokenizer.id_to_token(int(ids[r, p])) or "?", float(per_word[r, p]))
                 for p in torch.nonzero(ids[r, :words]).flatten().tolist()]
        if len(shares) > 1 and (ids[r, split:] != 0).any():
            found.append(("(character n-grams)", float(shares[1][r].sum())))
        per_row.append(found)
    tokens[feature.name] = _merged(tokens.get(feature.name), per_row)


def _merged(old: list[list[tuple[str, float]]] | None,
            new: list[list[tuple[str, float]]]) -> list[list[tuple[str, float]]]:
    """An ensemble's members each split their share: add them up token by token."""
    if old is None:
        return new
    return [[(t, a + b) for (t, a), (_, b) in zip(o, n, strict=True)] for o, n in zip(old, new, strict=True)]


def _explained(preprocessor: Preprocessor, targets: np.ndarray | None, rows: int) -> list[str]:
    target = preprocessor.target
    if targets is None:
        return [target.name] * rows
    return [f"P({target.classes[int(t)]})" for t in targets]


def _baselines(preprocessor: Preprocessor) -> dict[str, str]:
    """Each column's baseline in words; a column with two features (a number and its levels) names both."""
    specs = preprocessor.encoder_specs()
    found: dict[str, list[str]] = {}
    for feature in preprocessor.features:
        kind = (feature.type if feature.type in ("binary", "datetime") else "numeric") \
            if feature.block == NUMERIC_BLOCK else specs[feature.key]["kind"]
        said = "its levels: " + BASELINES["embedding"] if feature.type == "levels" else BASELINES.get(kind, "zeros")
        found.setdefault(feature.name, [])
        if said not in found[feature.name]:
            found[feature.name].append(said)
    return {name: "; ".join(words) for name, words in found.items()}
