"""Free text: a WordPiece or BPE tokenizer learned from the training text with Hugging Face `tokenizers`,
then padded token ids for the column's encoder (embedding bag, 1-D CNN or transformer).

The tokenizer is saved as its own JSON inside preprocessor.json: no code, and it encodes in Rust, in
parallel, once per table.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from deepwell.config import TextOptions
from deepwell.features.base import Feature

PAD, UNKNOWN = "[PAD]", "[UNK]"  # ids 0 and 1


def train_tokenizer(texts: list[str], kind: str, vocabulary: int, min_frequency: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNKNOWN))
        trainer = trainers.BpeTrainer(vocab_size=vocabulary, min_frequency=min_frequency,
                                      special_tokens=[PAD, UNKNOWN], show_progress=False)
    else:
        tokenizer = Tokenizer(models.WordPiece(unk_token=UNKNOWN))
        trainer = trainers.WordPieceTrainer(vocab_size=vocabulary, min_frequency=min_frequency,
                                            special_tokens=[PAD, UNKNOWN], show_progress=False)
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(texts, trainer)
    return canonical(tokenizer)


def canonical(tokenizer):
    """Renumber the vocabulary: specials first, then tokens in sorted order.

    The trainer breaks ties in hash-map order, so ids would otherwise be permuted from run to run (and
    with them which embedding row each token starts from); sorted ids make a run repeatable.
    """
    from tokenizers import Tokenizer

    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    ordered = [PAD, UNKNOWN] + sorted(t for t in vocab if t not in (PAD, UNKNOWN))
    data["model"]["vocab"] = {token: i for i, token in enumerate(ordered)}
    return Tokenizer.from_str(json.dumps(data))


class TextFeature(Feature):
    type = "text"
    block = "own"

    @property
    def text(self) -> TextOptions:
        return self.options.text or TextOptions()

    def fit(self, values: pd.Series) -> None:
        texts = values.dropna().astype(str).tolist()
        self.tokenizer = train_tokenizer(texts, self.text.tokenizer, self.options.max_vocabulary,
                                         self.options.min_frequency)

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        self.tokenizer.enable_truncation(self.options.max_tokens)
        self.tokenizer.enable_padding(length=self.options.max_tokens, pad_id=0, pad_token=PAD)
        texts = values.astype("string").fillna("").tolist()
        return np.array([encoding.ids for encoding in self.tokenizer.encode_batch(texts)], dtype=np.int64)

    def encoder_spec(self) -> dict[str, Any]:
        dim = self.options.embedding_dim or 128
        return {"kind": "bag" if self.text.encoder == "bag" else f"text_{self.text.encoder}",
                "num_embeddings": self.tokenizer.get_vocab_size(), "dim": dim,
                "max_tokens": self.options.max_tokens, "layers": self.text.layers, "heads": self.text.heads}

    def get_state(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.to_str()}

    def set_state(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(state["tokenizer"])
