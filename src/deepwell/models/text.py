"""Token encoders beyond the embedding bag: a 1-D CNN and a small transformer. Token id 0 is padding."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepwell.models.dropout import Dropout


class TextCNNEncoder(nn.Module):
    """Embeddings → convolutions of widths 3 and 5 → max over the text's positions (padding excluded)."""

    def __init__(self, spec: dict[str, Any], dropout: float = 0.0) -> None:
        super().__init__()
        dim = int(spec["dim"])
        self.embedding = nn.Embedding(int(spec["num_embeddings"]), dim, padding_idx=0)
        self.convolutions = nn.ModuleList(nn.Conv1d(dim, dim, k, padding=k // 2) for k in (3, 5))
        self.dropout = Dropout(dropout)
        self.output_dim = 2 * dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        padding = (tokens == 0).unsqueeze(1)
        x = self.embedding(tokens).transpose(1, 2)
        pooled = [torch.relu(conv(x)).masked_fill(padding, float("-inf")).amax(dim=2) for conv in self.convolutions]
        return self.dropout(torch.nan_to_num(torch.cat(pooled, dim=1), neginf=0.0))


class TextTransformerEncoder(nn.Module):
    """Token and position embeddings → pre-norm transformer layers → mean over non-padding positions."""

    def __init__(self, spec: dict[str, Any], dropout: float = 0.0) -> None:
        super().__init__()
        dim = int(spec["dim"])
        self.embedding = nn.Embedding(int(spec["num_embeddings"]), dim, padding_idx=0)
        self.position = nn.Embedding(int(spec["max_tokens"]), dim)
        layer = nn.TransformerEncoderLayer(dim, int(spec["heads"]), 2 * dim, dropout=0.1, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.layers = nn.TransformerEncoder(layer, int(spec["layers"]), enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)
        self.output_dim = dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        padding = tokens == 0
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        # an empty text masks every key, and attention over none is NaN: let it attend to its first (padding)
        # position; the mean below still counts only real tokens, so it pools to zeros
        attend_none = padding.all(dim=1, keepdim=True) & (positions == 0)
        x = self.layers(self.embedding(tokens) + self.position(positions),
                        src_key_padding_mask=padding & ~attend_none)
        keep = (~padding).unsqueeze(-1).float()
        pooled = (self.norm(x) * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)
        return self.dropout(pooled)
