"""The fit doctor for a fine-tuned causal LM: the same verdicts as for tables (evaluation/diagnosis.py), read
from the held-out loss curve and its start (epoch 0: the base model before any training)."""

from __future__ import annotations

import math

import pandas as pd

from deepwell.config import FinetuneConfig
from deepwell.evaluation.diagnosis import Diagnosis, Prescription, Verdict

OVERFIT_RISE = 0.05  # held-out loss 5% above its minimum at the end while the training loss kept falling
LEARNED = 0.02  # the held-out loss must fall at least 2% below the base model's to count as learning
STILL_FALLING = -0.01  # held-out loss still falling ≥ 1% per epoch at the last epoch


def diagnose_curve(history: pd.DataFrame, best: int, settings: FinetuneConfig) -> Diagnosis:
    val = history["val_loss"].to_numpy(float)
    train = history["train_loss"].dropna().to_numpy(float)
    start, lowest, last = val[0], float(val.min()), val[-1]
    epochs = int(history["epoch"].max())
    fall = 1 - lowest / start if start > 0 else 0.0
    slope = last / val[-2] - 1 if len(val) > 2 else (last / start - 1)
    rise = last / lowest - 1 if lowest > 0 else 0.0
    gap = float(lowest - train[best - 1]) if best >= 1 and len(train) >= best else None
    evidence = {"held_out_loss_before": round(start, 4), "held_out_loss_best": round(lowest, 4),
                "held_out_loss_last": round(last, 4), "best_epoch": best, "epochs_run": epochs,
                "perplexity_before": round(math.exp(min(start, 50)), 3),
                "perplexity_best": round(math.exp(min(lowest, 50)), 3),
                "relative_fall": round(fall, 4), "last_epoch_change": round(slope, 4),
                "rise_from_minimum": round(rise, 4), "train_minus_held_out_at_best": None if gap is None else
                round(-gap, 4), "method": settings.method.value, "learning_rate": settings.rate()}
    rate, budget = settings.rate(), settings.epochs
    if fall < LEARNED:
        return Diagnosis(Verdict.UNDERFIT, (
            f"The held-out loss barely moved from the base model's {start:.4f} (best {lowest:.4f}, "
            f"{fall:.1%} lower): the adapter did not learn the task."), evidence,
            [Prescription("learning_rate", rate * 3, "a larger learning rate", rate),
             Prescription("epochs", budget * 2, "more epochs", budget)]
            + ([Prescription("lora.rank", settings.lora.rank * 2, "a larger adapter", settings.lora.rank)]
               if settings.method.value == "lora" else []))
    if best == epochs and epochs == budget and slope < STILL_FALLING:
        return Diagnosis(Verdict.NOT_CONVERGED, (
            f"The held-out loss was still falling at the last of the {budget} epochs ({slope:+.1%} in the last "
            "one): training stopped before it finished."), evidence,
            [Prescription("epochs", budget * 2, "twice the epoch budget", budget)])
    if rise > OVERFIT_RISE and len(train) >= 2 and train[-1] < train[best - 1 if best else 0]:
        return Diagnosis(Verdict.OVERFIT, (
            f"After epoch {best} the held-out loss rose {rise:.0%} above its minimum {lowest:.4f} while the "
            "training loss kept falling: the model memorises the training pairs (the best epoch was kept)."),
            evidence, [Prescription("epochs", best, "stop at the best epoch", budget),
                       Prescription(None, None, "more (or more varied) training examples")]
            + ([Prescription("lora.dropout", min(0.3, settings.lora.dropout + 0.1), "more adapter dropout",
                             settings.lora.dropout)] if settings.method.value == "lora" else []))
    return Diagnosis(Verdict.GOOD_FIT, (
        f"The held-out loss fell {fall:.0%} from the base model's {start:.4f} to {lowest:.4f} (perplexity "
        f"{math.exp(min(start, 50)):.2f} → {math.exp(min(lowest, 50)):.2f}) and settled by epoch {best}."),
        evidence, [])
