"""The search space: capacity and regularisation, as changes to a resolved configuration."""

from __future__ import annotations

from typing import Any

WIDTHS = [32, 64, 128, 256, 512, 1024]
BATCHES = [32, 64, 128, 256, 512, 1024]


def suggest(trial, config: dict[str, Any], train_rows: int) -> dict[str, Any]:
    """Dotted config paths → values for this trial (hidden layers and width, dropout, weight decay, learning
    rate, batch size, and the size of each text / image / audio encoder)."""
    batches = [b for b in BATCHES if b <= max(32, train_rows // 4)]
    changes = {
        "model.hidden_layers": trial.suggest_int("hidden_layers", 1, 6),
        "model.hidden_width": trial.suggest_categorical("hidden_width", WIDTHS),
        "model.dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "training.weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
        "training.learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "training.batch_size": trial.suggest_categorical("batch_size", batches),
    }
    for name, column in config["columns"].items():
        if column["type"] == "text" and not column["text"].get("pretrained"):
            changes[f"columns.{name}.embedding_dim"] = trial.suggest_categorical(f"{name}.embedding_dim",
                                                                                [32, 64, 128, 256])
        elif column["type"] in ("image", "audio") and not column[column["type"]].get("pretrained"):
            kind = column["type"]
            changes[f"columns.{name}.{kind}.width"] = trial.suggest_categorical(f"{name}.width", [8, 16, 32, 64])
    return changes


def defaults(config: dict[str, Any], train_rows: int) -> dict[str, Any]:
    """Trial parameters equal to the given configuration, so the search starts from it (enqueued first)."""
    batch = config["training"]["batch_size"]
    params = {"hidden_layers": min(6, config["model"]["hidden_layers"]),
              "hidden_width": min(WIDTHS, key=lambda w: abs(w - config["model"]["hidden_width"])),
              "dropout": min(0.5, config["model"]["dropout"]),
              "weight_decay": min(1e-1, max(1e-5, config["training"]["weight_decay"])),
              "learning_rate": min(1e-2, max(1e-4, config["training"]["learning_rate"])),
              "batch_size": min([b for b in BATCHES if b <= max(32, train_rows // 4)],
                                key=lambda b: abs(b - (batch if isinstance(batch, int) else 256)))}
    for name, column in config["columns"].items():
        if column["type"] == "text" and not column["text"].get("pretrained"):
            params[f"{name}.embedding_dim"] = min([32, 64, 128, 256],
                                                  key=lambda d: abs(d - (column.get("embedding_dim") or 128)))
        elif column["type"] in ("image", "audio") and not column[column["type"]].get("pretrained"):
            params[f"{name}.width"] = min([8, 16, 32, 64], key=lambda w: abs(w - column[column["type"]]["width"]))
    return params


def apply(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` with dotted-path changes applied."""
    import copy

    out = copy.deepcopy(config)
    for path, value in changes.items():
        node = out
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return out
