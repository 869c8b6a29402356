"""The fitted preprocessing of an exported model, read from its preprocessor.json (the full package's own file)
and applied with numpy: one `Column` per feature, each giving exactly the array the full feature gives
(tests compare them on held-out rows), so the ONNX graph sees what the PyTorch network saw.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from deepwell.edge import media
from deepwell.edge.values import EdgeError, Table, is_missing, keys, numbers, value_key, wrong_values

CLIP = 8.0  # features/number.py: standardised values beyond ±CLIP are clipped
UNKNOWN, MISSING = 0, 1  # features/category.py: reserved indices
NUMERIC = "numeric"  # the network input every numeric-like column shares


class Column(ABC):
    """One fitted feature: `name` is the column read, `key` the network input it feeds."""

    type: ClassVar[str]
    numeric: ClassVar[bool] = True  # part of the shared numeric matrix
    reads_files: ClassVar[bool] = False

    def __init__(self, item: dict[str, Any], folder: Path) -> None:
        self.name, self.key, self.options = item["name"], item.get("key", item["name"]), item["options"]
        self.state = item
        self.folder = folder

    @abstractmethod
    def transform(self, table: Table, errors: dict[int, str]) -> np.ndarray:
        """The feature's array for every row; a file that cannot be read gets zeros and `errors[row]`."""


class Number(Column):
    type = "number"

    def transform(self, table: Table, errors: dict[int, str]) -> np.ndarray:
        x = numbers(table.columns[self.name], self.name, table.row_name, table.source)
        missing = np.isnan(x)
        if self.state["log"]:
            x = np.log1p(np.clip(x, 0, None))
        z = np.clip((x - self.state["mean"]) / self.state["std"], -CLIP, CLIP)
        z[missing] = 0.0
        columns = [z, missing.astype(np.float64)] if self.state["indicator"] else [z]
        return np.stack(columns, axis=1).astype(np.float32)


class Binary(Column):
    type = "binary"

    @property
    def levels(self) -> list[str]:
        return list(self.state["levels"])

    def transform(self, table: Table, errors: dict[int, str]) -> np.ndarray:
        found = keys(table.columns[self.name])
        levels = self.state["levels"]
        codes = {levels[0]: 0.0, levels[-1]: 1.0} if len(levels) == 2 else {level: 1.0 for level in levels}
        columns = [np.array([codes.get(key, 0.5) for key in found], dtype=np.float64)]
        if self.state["indicator"]:
            columns.append(np.array([key is None for key in found], dtype=np.float64))
        return np.stack(columns, axis=1).astype(np.float32)


class Category(Column):
    type = "category"
    numeric = False

    @property
    def vocabulary(self) -> list[str]:
        return list(self.state["vocabulary"])

    def transform(self, table: Table, errors: dict[int, str]) -> np.ndarray:
        lookup = {key: i + 2 for i, key in enumerate(self.state["vocabulary"])}
        return np.array([MISSING if key is None else lookup.get(key, UNKNOWN) for key in
                         keys(table.columns[self.name])], dtype=np.int64)


class Levels(Category):
    """features/levels.py: a number column's values as categories, keyed as numbers."""

    type = "levels"

    def transform(self, table: Table, errors: dict[int, str]) -> np.ndarray:
        x = numbers(table.columns[self.name], self.name, table.row_name, table.source)
        lookup = {key: i + 2 for i, key in enumerate(self.state["vocabulary"])}
        return np.array([MISSING if math.isnan(v) else lookup.get(value_key(float(v)), UNKNOWN) for v in x],
                        dtype=np.int64)


DATE_FORMATS = ("%m/%d/%Y", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%Y/%m/%d", "%Y/%m/%d %H:%M", "%d %b %Y",
                "%d %B %Y", "%b %d %Y", "%B %d %Y", "%b %d, %Y", "%B %d, %Y", "%Y%m%d")


def parse_date(value: Any) -> datetime | None:
    """ISO 8601 (any form Python reads), US month-first dates and a few spelled-out ones; None when none fits.
    The full package parses with pandas' mixed formats, which reads more spellings."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        pass
    for form in DATE_FORMATS:
        try:
            return datetime.strptime(text, form)
        except ValueError:
            continue
    return None


class Date(Column):
    type = "datetime"

    def transform(self, table: Table, errors: dict[int, str]) -> np.ndarray:
        values = table.columns[self.name]
        present = [not is_missing(v) and str(v).strip() != "" for v in values]
        dates = [parse_date(v) if p else None for v, p in zip(values, present, strict=True)]
        bad = [(i, values[i]) for i, (d, p) in enumerate(zip(dates, present, strict=True)) if p and d is None]
        if bad:
            raise wrong_values(self.name, "dates or times", bad, table.source, table.row_name)
        parts = np.zeros((len(values), 9))
        mean, std = self.state["year_mean"], self.state["year_std"]
        for i, d in enumerate(dates):
            if d is None:
                parts[i, 8] = 1.0
                continue
            year = (d.year + d.timetuple().tm_yday / 366.0 - mean) / std
            month, weekday = 2 * math.pi * (d.month - 1) / 12, 2 * math.pi * d.weekday() / 7
            hour = 2 * math.pi * (d.hour + d.minute / 60) / 24
            parts[i, :8] = [year, math.sin(month), math.cos(month), (d.day - 16) / 9, math.sin(weekday),
                            math.cos(weekday), math.sin(hour), math.cos(hour)]
        return np.nan_to_num(parts).astype(np.float32)


class Text(Column):
    """The model's own tokenizer (its JSON is in the state), token n-gram ids and character n-gram ids."""

    type = "text"
    numeric = False

    def __init__(self, item: dict[str, Any], folder: Path) -> None:
        from tokenizers import Tokenizer

        super().__init__(item, folder)
        self.tokenizer = Tokenizer.from_str(item["tokenizer"])
        self.words = int(item.get("word_width") or self.options["max_tokens"])  # ids per text, as the feature
        self.ngram_keys = np.asarray(item.get("ngram_keys", []), dtype=np.int64)
        self.characters: dict[str, int] | None = item.get("characters")
        self.character_width = int(item.get("character_width", 0))
        text = self.options.get("text") or {}
        self.ngrams = int(text.get("ngrams", 1))
        self.character_n = text.get("characters") if isinstance(text.get("characters"), int) else 0

    def transform(self, table: Table, errors: dict[int, str]) -> np.ndarray:
        texts = ["" if is_missing(v) else str(v) for v in table.columns[self.name]]
        tokens = token_ids(self.tokenizer, texts, self.words)
        vocabulary = self.tokenizer.get_vocab_size()
        columns = [tokens]
        for n in range(2, self.ngrams + 1 if len(self.ngram_keys) else 2):
            found = ngram_keys(tokens, n, vocabulary)
            at = np.searchsorted(self.ngram_keys, found).clip(max=len(self.ngram_keys) - 1)
            known = (found >= 0) & (self.ngram_keys[at] == found)
            columns.append(np.where(known, vocabulary + at, 0))
        if self.characters:
            columns.append(self._character_ids(texts, vocabulary + len(self.ngram_keys)))
        return np.concatenate(columns, axis=1) if len(columns) > 1 else tokens

    def _character_ids(self, texts: list[str], offset: int) -> np.ndarray:
        """Each text's distinct character n-grams known to the model, rarest first, 0-padded to the width."""
        ids = np.zeros((len(texts), self.character_width), dtype=np.int64)
        for row, text in enumerate(texts):
            ranks = sorted({self.characters[g] for g in char_wb_ngrams(text, 2, self.character_n)
                            if g in self.characters})[:self.character_width]
            ids[row, :len(ranks)] = offset + np.asarray(ranks, dtype=np.int64)
        return ids


WHITESPACE = re.compile(r"\s\s+")


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """scikit-learn's `analyzer="char_wb"` n-grams of lower-cased text: within words padded by one space."""
    grams = []
    for word in WHITESPACE.sub(" ", text.lower()).split():
        word = f" {word} "
        for n in range(low, high + 1):
            offset = 0
            grams.append(word[offset:offset + n])
            while offset + n < len(word):
                offset += 1
                grams.append(word[offset:offset + n])
            if offset == 0:  # a word shorter than n counts once
                break
    return grams


ENCODE_SLICE = 4096  # texts encoded at once: a tokenizers Encoding of 64 tokens holds ~7 KB besides its ids


def token_ids(tokenizer, texts: list[str], width: int) -> np.ndarray:
    """[texts, width] int64 token ids, truncated to `width` and 0-padded here rather than by the tokenizer:
    encoded a slice at a time without padding (100,000 texts padded to 64 held 700 MB of Encoding objects, and
    turning 64 ids per text into Python lists cost more than the encoding itself)."""
    from itertools import chain

    tokenizer.no_padding()
    tokenizer.enable_truncation(width)
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    out = np.zeros((len(texts), width), dtype=np.int64)
    for start in range(0, len(texts), ENCODE_SLICE):
        rows = [e.ids for e in encode(texts[start:start + ENCODE_SLICE])]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
        row = np.repeat(np.arange(len(rows)), lengths)
        column = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[start + row, column] = flat
    return out


def ngram_keys(tokens: np.ndarray, n: int, vocabulary: int) -> np.ndarray:
    """One int64 per run of n consecutive tokens (t1·V^(n-1) + … + tn; -1 where a run touches padding),
    [rows, max_tokens - n + 1]. Exact, not hashed: 20,000³ still fits in 63 bits. The text feature uses it too."""
    width = tokens.shape[1] - n + 1
    if width <= 0:
        return np.full((len(tokens), 0), -1, dtype=np.int64)
    found = np.zeros((len(tokens), width), dtype=np.int64)
    padded = np.zeros((len(tokens), width), dtype=bool)
    for i in range(n):
        window = tokens[:, i:i + width]
        found = found * vocabulary + window
        padded |= window == 0
    return np.where(padded, -1, found)


class PretrainedText(Column):
    """A Hugging Face tokenizer (assets/<key>/tokenizer.json): token ids for an encoder inside the network, or,
    for a frozen encoder, its sentence embeddings from the encoder's own graph (encoders/<key>.onnx)."""

    type = "text"  # the column's type; the tokenizer and encoder are what differ from Text
    numeric = False
    BATCH = 64  # texts per encoder run, as features/pretrained.py batches them

    def __init__(self, item: dict[str, Any], folder: Path, spec: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        super().__init__(item, folder)
        self.tokenizer = Tokenizer.from_file(str(folder / spec["tokenizer"]))
        self.tokenizer.no_padding()
        self.max_tokens, self.pad_id = int(self.options["max_tokens"]), int(spec["pad_id"])
        self.encoder = spec.get("encoder")
        self.session = None
        if self.encoder:
            from deepwell.edge.model import session

            self.session = session(folder / self.encoder)

    def transform(self, table: Table, errors: dict[int, str]) -> np.ndarray:
        texts = ["" if is_missing(v) else str(v) for v in table.columns[self.name]]
        self.tokenizer.enable_truncation(self.max_tokens)
        if self.session is None:  # padded to max_tokens with the tokenizer's pad id, as the network was trained
            self.tokenizer.enable_padding(length=self.max_tokens, pad_id=self.pad_id)
            return self._ids(texts)[0]
        self.tokenizer.enable_padding(pad_id=self.pad_id)  # to the longest text of each batch
        out = [np.zeros((0, int(self.state["dim"])), dtype=np.float32)]
        for start in range(0, len(texts), self.BATCH):
            ids, mask = self._ids(texts[start:start + self.BATCH])
            out.append(self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
        return np.concatenate(out)

    def _ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        return (np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), -1),
                np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(len(texts), -1))


class Files(Column):
    """A column of image or audio files: paths (relative to the table's folder), bytes or arrays; a file that
    cannot be read gives its row zeros and a reason, as in the full package. With a frozen pretrained encoder
    (`encoder`: its graph, from edge.json), the decoded files go through it and the column gives embeddings."""

    numeric = False
    reads_files = True
    BATCH = 32  # files per encoder run, as features/pretrained.py batches them

    def __init__(self, item: dict[str, Any], folder: Path, encoder: str | None = None) -> None:
        super().__init__(item, folder)
        self.session = None
        if encoder:
            from deepwell.edge.model import session

            self.session = session(folder / encoder)

    def transform(self, table: Table, errors: dict[int, str]) -> np.ndarray:
        values = [media.resolve_path(v, table.base_dir) for v in table.columns[self.name]]
        results = media.decode_each(values, self.decode)
        for row, (array, reason) in enumerate(results):
            if array is None:
                errors.setdefault(row, f"{self.name}: {reason}")
        stacked = self.stack([array for array, _ in results])
        if self.session is None:
            return stacked
        out = [np.zeros((0, int(self.state["dim"])), dtype=np.float32)]
        out += [self.session.run(None, {"files": stacked[s:s + self.BATCH]})[0]
                for s in range(0, len(stacked), self.BATCH)]
        return np.concatenate(out)

    @abstractmethod
    def decode(self, value: Any) -> np.ndarray: ...

    @abstractmethod
    def stack(self, arrays: list[np.ndarray | None]) -> np.ndarray: ...


class Image(Files):
    type = "image"

    def __init__(self, item: dict[str, Any], folder: Path, encoder: str | None = None) -> None:
        super().__init__(item, folder, encoder)
        image = self.options["image"]
        self.size, self.channels = int(image["size"]), 1 if image["channels"] == "auto" else int(image["channels"])

    def decode(self, value: Any) -> np.ndarray:
        return media.decode_image(value, self.size, self.channels)

    def stack(self, arrays: list[np.ndarray | None]) -> np.ndarray:
        out = np.zeros((len(arrays), self.channels, self.size, self.size), dtype=np.uint8)
        for row, array in enumerate(arrays):
            if array is not None:
                out[row] = array.transpose(2, 0, 1)
        return out


class Audio(Files):
    type = "audio"

    def __init__(self, item: dict[str, Any], folder: Path, encoder: str | None = None) -> None:
        super().__init__(item, folder, encoder)
        audio = self.options["audio"]
        self.rate = int(audio["sample_rate"])
        # the plain feature's state says (False for models saved before trimming); a pretrained one's options do
        self.trim = bool(item["trim_silence"] if "trim_silence" in item else audio.get("trim_silence", False))
        self.samples = int(round(self.rate * float(audio["duration"])))

    def decode(self, value: Any) -> np.ndarray:
        return media.decode_audio(value, self.rate, self.samples, trim=self.trim)

    def stack(self, arrays: list[np.ndarray | None]) -> np.ndarray:
        out = np.zeros((len(arrays), self.samples), dtype=np.int16)
        for row, array in enumerate(arrays):
            if array is not None:
                out[row] = array
        return out


PLAIN: dict[str, type[Column]] = {cls.type: cls for cls in (Number, Binary, Category, Levels, Date, Text, Image,
                                                             Audio)}


def columns_of(preprocessor: dict[str, Any], folder: Path, pretrained: dict[str, dict[str, Any]],
               encoders: dict[str, str] | None = None) -> list[Column]:
    """A Column per feature of preprocessor.json; from edge.json, `pretrained` describes the text columns with a
    Hugging Face tokenizer and `encoders` names the graph of each frozen pretrained image or audio encoder."""
    out: list[Column] = []
    encoders = encoders or {}
    for item in preprocessor["features"]:
        key = item.get("key", item["name"])
        if key in pretrained:
            out.append(PretrainedText(item, folder, pretrained[key]))
        elif key in encoders:
            out.append(PLAIN[item["type"]](item, folder, encoders[key]))
        elif item["type"] in PLAIN:
            out.append(PLAIN[item["type"]](item, folder))
        else:
            raise EdgeError(f"{folder}: column {item['name']!r} has type {item['type']!r}, which this edge runtime "
                            "does not know; export the model again with this deepwell version.")
    return out


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeError(f"{path.parent}: not an exported deepwell model ({path.name} is missing); create one with "
                        "`deepwell export MODEL -o FOLDER`.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgeError(f"{path}: damaged ({exc}); export the model again.") from None
