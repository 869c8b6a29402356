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
from deepwell.edge.columns import ngram_keys as _keys  # one int64 per token n-gram, shared with the edge runtime
from deepwell.edge.columns import token_ids as _token_ids  # padded ids, encoded a slice at a time (shared too)
from deepwell.features.base import Feature

PAD, UNKNOWN = "[PAD]", "[UNK]"  # ids 0 and 1
MAX_CHARACTER_IDS = 1024  # character n-grams kept per text (the rarest, when a long text has more)


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

    ngram_keys: np.ndarray = np.zeros(0, dtype=np.int64)  # sorted keys of the n-grams kept (see _keys)
    characters: dict[str, int] | None = None  # character n-gram → its id among them, rarest in training first
    character_width: int = 0  # character n-gram ids kept per text (the most any training text has, ≤ MAX)
    word_width: int = 0  # a bag's token ids kept per text (the most any training text has, ≤ max_tokens); 0: max_tokens

    @property
    def character_n(self) -> int:
        """The longest character n-gram (`text.characters`; left at auto outside `prepare`: none)."""
        return self.text.characters if isinstance(self.text.characters, int) else 0

    @property
    def pooling(self) -> str:
        """How the bag pools (`text.pooling`; left at auto outside `prepare`: mean)."""
        return "mean" if self.text.pooling == "auto" else self.text.pooling

    def fit(self, values: pd.Series) -> None:
        texts = values.dropna().astype(str).tolist()
        self.tokenizer = train_tokenizer(texts, self.text.tokenizer, self.options.max_vocabulary,
                                         self.options.min_frequency)
        self.ngram_keys, self.word_width = np.zeros(0, dtype=np.int64), 0
        self.characters, self.character_width = None, 0
        if self.text.encoder != "bag":
            return
        tokens = self._token_ids(values.dropna())  # max_tokens wide while word_width is 0
        self.word_width = max(1, int((tokens != 0).sum(axis=1).max(initial=0)))  # padding is wasted work in a bag
        if self.text.ngrams > 1:
            self.ngram_keys = self._frequent_ngrams(tokens[:, :self.word_width])
        if self.character_n >= 2 and texts:
            self._fit_characters(texts)

    def _frequent_ngrams(self, tokens: np.ndarray) -> np.ndarray:
        """Sorted keys of the token n-grams (2 to `ngrams`) seen at least min_frequency times, the most frequent
        max_vocabulary of them."""
        keys = np.concatenate([_keys(tokens, n, self.tokenizer.get_vocab_size()).ravel()
                               for n in range(2, self.text.ngrams + 1)])
        found, counts = np.unique(keys[keys >= 0], return_counts=True)
        frequent = found[counts >= self.options.min_frequency]
        if len(frequent) > self.options.max_vocabulary:  # the most frequent ones
            order = np.argsort(-counts[counts >= self.options.min_frequency], kind="stable")
            frequent = np.sort(frequent[order[:self.options.max_vocabulary]])
        return frequent

    def _fit_characters(self, texts: list[str]) -> None:
        vectorizer = self._vectorizer(None)
        try:
            present = vectorizer.fit_transform(texts) > 0
        except ValueError:  # no character n-gram frequent enough
            return
        frequency = np.asarray(present.sum(axis=0)).ravel()
        order = np.argsort(frequency, kind="stable")  # rarest first: what a long text keeps when truncated
        names = vectorizer.get_feature_names_out()
        self.characters = {str(names[column]): rank for rank, column in enumerate(order)}
        self.character_width = int(min(MAX_CHARACTER_IDS, np.asarray(present.sum(axis=1)).max()))

    def _vectorizer(self, vocabulary: dict[str, int] | None):
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(analyzer="char_wb", ngram_range=(2, self.character_n), lowercase=True,
                               min_df=self.options.min_frequency, max_features=self.options.max_vocabulary,
                               vocabulary=vocabulary, dtype=np.int32)

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        tokens = self._token_ids(values)
        vocabulary = self.tokenizer.get_vocab_size()
        columns = [tokens]
        for n in range(2, self.text.ngrams + 1 if len(self.ngram_keys) else 2):
            keys = _keys(tokens, n, vocabulary)
            at = np.searchsorted(self.ngram_keys, keys).clip(max=len(self.ngram_keys) - 1)
            known = (keys >= 0) & (self.ngram_keys[at] == keys)
            columns.append(np.where(known, vocabulary + at, 0))  # 0: padding, ignored by the bag
        if self.characters:
            columns.append(self._character_ids(values, vocabulary + len(self.ngram_keys)))
        return np.concatenate(columns, axis=1) if len(columns) > 1 else tokens

    def _character_ids(self, values: pd.Series, offset: int) -> np.ndarray:
        """[rows, character_width] ids of each text's character n-grams (rarest first), 0-padded."""
        present = self._vectorizer(self.characters).transform(values.astype("string").fillna("").tolist())
        present.sort_indices()
        rows = np.repeat(np.arange(len(values)), np.diff(present.indptr))
        position = np.arange(present.nnz) - present.indptr[rows]  # place of each n-gram within its text
        keep = position < self.character_width
        ids = np.zeros((len(values), self.character_width), dtype=np.int64)
        ids[rows[keep], position[keep]] = offset + present.indices[keep]
        return ids

    @property
    def words(self) -> int:
        """Token ids per text: `word_width` for a bag, `max_tokens` for the sequence encoders (and older models)."""
        return self.word_width or self.options.max_tokens

    @property
    def token_width(self) -> int:
        """Columns of token and token n-gram ids before the character n-grams."""
        n = self.words
        return n + sum(max(0, n - k + 1) for k in range(2, self.text.ngrams + 1)) if len(self.ngram_keys) else n

    def _token_ids(self, values: pd.Series) -> np.ndarray:
        texts = values.astype("string").fillna("").tolist()
        return _token_ids(self.tokenizer, texts, self.words)

    def encoder_spec(self) -> dict[str, Any]:
        dim = self.options.embedding_dim or 128
        characters = len(self.characters or {})
        return {"kind": "bag" if self.text.encoder == "bag" else f"text_{self.text.encoder}",
                "num_embeddings": self.tokenizer.get_vocab_size() + len(self.ngram_keys) + characters, "dim": dim,
                "max_tokens": self.options.max_tokens, "layers": self.text.layers, "heads": self.text.heads,
                **({"split": self.token_width} if characters else {}),
                **({"pooling": self.pooling} if self.text.encoder == "bag" else {})}

    def get_state(self) -> dict[str, Any]:
        state = {"tokenizer": self.tokenizer.to_str(), "ngram_keys": self.ngram_keys.tolist()}
        if self.word_width:
            state["word_width"] = self.word_width
        if self.characters:
            state.update(characters=self.characters, character_width=self.character_width)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(state["tokenizer"])
        self.ngram_keys = np.asarray(state.get("ngram_keys", []), dtype=np.int64)
        self.characters = state.get("characters")
        self.character_width = int(state.get("character_width", 0))
        self.word_width = int(state.get("word_width", 0))
