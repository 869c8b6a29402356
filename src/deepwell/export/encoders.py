"""The graphs of frozen pretrained encoders, which run in preprocessing rather than inside the network: a MiniLM
sentence encoder (token ids and mask → the L2-normalised mean pool) and a ViT or wav2vec 2.0 (the decoded files →
the processor's scaling and normalisation → the pooled vector), each `encoders/<key>.onnx` in an export, with a
Hugging Face tokenizer's JSON under `assets/`. What each returns goes into edge.json.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepwell.errors import ConfigError, ModelFileError

if TYPE_CHECKING:
    from deepwell.model import Model


def pretrained_text(model: Model, folder: Path) -> dict[str, dict[str, Any]]:
    """Per text column with a Hugging Face tokenizer: its tokenizer.json and pad id, and for a frozen encoder its
    own graph (encoders/<key>.onnx: token ids and mask → the L2-normalised mean of the last hidden states)."""
    from deepwell.features.pretrained import PretrainedTextFeature

    out = {}
    for feature in model.preprocessor.features:
        if not isinstance(feature, PretrainedTextFeature):
            continue
        name = feature.key.replace("#", "__")
        tokenizer, encoder = feature._encoder()
        if not (feature.source / "tokenizer.json").is_file():
            raise ModelFileError(f"Column {feature.name!r}: {feature.source} has no tokenizer.json (a fast "
                                 "tokenizer), which the edge runtime reads.")
        (folder / "assets" / name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(feature.source / "tokenizer.json", folder / "assets" / name / "tokenizer.json")
        pad = int(tokenizer.pad_token_id or 0)
        spec: dict[str, Any] = {"tokenizer": f"assets/{name}/tokenizer.json", "pad_id": pad}
        if encoder is not None:
            spec["encoder"] = f"encoders/{name}.onnx"
            _export_sentence_encoder(encoder, folder / spec["encoder"], pad)
        out[feature.key] = spec
    return out


def _export_sentence_encoder(encoder, path: Path, pad_id: int) -> None:
    import torch

    from deepwell.export.onnx import write_graph

    class Sentence(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
            return torch.nn.functional.normalize(pooled, dim=1)

    ids = torch.full((2, 8), pad_id, dtype=torch.int64)
    ids[:, :5] = torch.arange(100, 105)
    axes = {"input_ids": {0: "rows", 1: "tokens"}, "attention_mask": {0: "rows", 1: "tokens"},
            "embeddings": {0: "rows"}}
    write_graph(Sentence(), (ids, (ids != pad_id).long()), path, ["input_ids", "attention_mask"], ["embeddings"],
                axes)


def file_encoders(model: Model, folder: Path) -> dict[str, str]:
    """Per image or audio column with a frozen pretrained encoder: its graph (encoders/<key>.onnx: the decoded
    files, as the column stacks them, → the processor's rescaling and normalisation → the model → the pooled
    vector the full feature embeds). The processor's other steps are no-ops on decoded files (they are already
    at its size and rate); the export's check against the full model would catch one that is not."""
    import torch

    from deepwell.export.onnx import write_graph
    from deepwell.features.pretrained import PretrainedAudioFeature, PretrainedImageFeature

    out = {}
    for feature in model.preprocessor.features:
        if not isinstance(feature, (PretrainedImageFeature, PretrainedAudioFeature)) or \
                feature._options().trains_encoder:
            continue
        processor, encoder = feature._model()
        inputs = _image_inputs(processor) if isinstance(feature, PretrainedImageFeature) else \
            _audio_inputs(processor, feature.name)
        path = f"encoders/{feature.key.replace('#', '__')}.onnx"
        example = torch.from_numpy(feature.stack([None, None], 2))
        write_graph(_file_encoder(encoder, inputs), (example,), folder / path, ["files"], ["embeddings"],
                    {"files": {0: "rows"}, "embeddings": {0: "rows"}})
        out[feature.key] = path
    return out


def _file_encoder(encoder, inputs):
    """A module (torch is imported by the export alone): decoded files → `inputs` → the model → the pooled vector."""
    import torch

    from deepwell.features.pretrained import pooled

    class FileEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, files: torch.Tensor) -> torch.Tensor:
            return pooled(self.encoder(**inputs(files))).float()

    return FileEncoder()


def _image_inputs(processor):
    """uint8 [rows, channels, size, size] → pixel_values as the image processor scales and normalises them."""
    import torch

    scale = float(getattr(processor, "rescale_factor", 1 / 255)) if getattr(processor, "do_rescale", True) else 1.0
    normalise = bool(getattr(processor, "do_normalize", False))
    mean = torch.tensor(list(getattr(processor, "image_mean", None) or [0.0]), dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(list(getattr(processor, "image_std", None) or [1.0]), dtype=torch.float32).view(1, -1, 1, 1)

    def inputs(files):
        x = files.float() * scale
        return {"pixel_values": (x - mean) / std if normalise else x}

    return inputs


def _audio_inputs(processor, column: str):
    """int16 [rows, samples] → input_values as a waveform feature extractor gives them (zero mean, unit variance
    per clip when it normalises)."""
    if list(getattr(processor, "model_input_names", ["input_values"]))[:1] != ["input_values"]:
        raise ConfigError(f"Column {column!r}: its frozen encoder's feature extractor gives "
                          f"{processor.model_input_names[0]!r}, not waveforms, which the export cannot express yet; "
                          "serve the model with the full package.")
    normalise = bool(getattr(processor, "do_normalize", False))

    def inputs(files):
        x = files.float() / 32768.0
        if normalise:
            x = (x - x.mean(dim=1, keepdim=True)) / (x.var(dim=1, keepdim=True, unbiased=False) + 1e-7).sqrt()
        return {"input_values": x}

    return inputs
