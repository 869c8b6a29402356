"""The bias audit: what the data holds per group, and how the model treats each group.

Classification is audited for one favourable outcome (default: the positive class, or the last class) against
a privileged group (default: the largest). Per group: accuracy, selection rate, true and false positive rates,
precision. Per unprivileged group against the privileged one:

- Statistical Parity Difference  SPD = SR(g) − SR(p), flagged outside ±0.1
- Disparate Impact Ratio         DIR = SR(g) / SR(p), flagged outside 0.8–1.25
- Equal Opportunity Difference   EOD = TPR(g) − TPR(p), flagged outside ±0.1
- Average Odds Difference        AOD = ((FPR(g) − FPR(p)) + (TPR(g) − TPR(p))) / 2, flagged outside ±0.1

each with a 95 % bootstrap interval (small groups are noisy), and fairlearn's demographic-parity and
equalised-odds differences over all groups beside them. Regression: per-group error and mean prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepwell.errors import ConfigError, DataError

BOOTSTRAP = 500
CHUNK = 25  # bootstrap resamples counted together
MIN_SHARE = 0.05  # a group below this share of the rows is under-represented
POPULATION_RATIO = 0.8  # …as is one below 80 % of the population share the user gives
BASE_RATE_GAP = 0.1  # a gap in the favourable-label rate between groups worth a warning
MIN_ROWS = 30  # groups smaller than this are reported, never compared (their rates are too noisy)
THRESHOLDS = {"statistical_parity_difference": (-0.1, 0.1), "disparate_impact_ratio": (0.8, 1.25),
              "equal_opportunity_difference": (-0.1, 0.1), "average_odds_difference": (-0.1, 0.1)}


@dataclass
class GroupData:
    group: str
    rows: int
    share: float
    base_rate: float | None  # classification: share with the favourable label; regression: mean target
    missing: float  # share of the group's input cells without a value


@dataclass
class DataAudit:
    attribute: str
    favourable: str | None
    groups: list[GroupData]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GroupScores:
    group: str
    rows: int
    accuracy: float | None = None
    selection_rate: float | None = None
    true_positive_rate: float | None = None
    false_positive_rate: float | None = None
    precision: float | None = None
    rmse: float | None = None  # regression
    mean_prediction: float | None = None
    mean_target: float | None = None


@dataclass
class FairnessMetric:
    name: str
    group: str  # the unprivileged group compared with the privileged one ("all groups" for fairlearn's)
    value: float
    interval: tuple[float, float] | None
    flagged: bool
    sentence: str = ""


@dataclass
class ModelAudit:
    attribute: str
    favourable: str | None
    privileged: str | None
    groups: list[GroupScores]
    metrics: list[FairnessMetric] = field(default_factory=list)

    @property
    def flagged(self) -> list[FairnessMetric]:
        return [m for m in self.metrics if m.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flagged": [f"{m.name} ({m.group})" for m in self.flagged]}


# --- the data ------------------------------------------------------------------------------------
def audit_data(groups: pd.Series, target: pd.Series, inputs: pd.DataFrame, favourable: str | None,
               population: dict[str, float] | None = None, min_share: float = MIN_SHARE) -> DataAudit:
    """Counts, shares, favourable-label rates and missing values per group, with warnings in words."""
    rows = len(groups)
    favoured = None if favourable is None else (target.astype(str) == favourable)
    result, warnings = [], []
    for name, index in groups.groupby(groups, sort=True).groups.items():
        part = inputs.loc[index]
        base = float(favoured.loc[index].mean()) if favoured is not None else float(target.loc[index].mean())
        missing = float(part.isna().to_numpy().mean()) if part.size else 0.0
        result.append(GroupData(str(name), len(index), len(index) / rows, base, missing))
    for g in result:
        if g.share < min_share:
            warnings.append(f"{groups.name}={g.group} is {g.share:.1%} of the rows ({g.rows}), below {min_share:.0%}: "
                            "the model sees few examples of it and its scores are uncertain.")
        expected = (population or {}).get(g.group)
        if expected and g.share < POPULATION_RATIO * expected:
            warnings.append(f"{groups.name}={g.group} is {g.share:.1%} of the rows but {expected:.0%} of the "
                            "population you gave: under-represented.")
    comparable = [g for g in result if g.rows >= MIN_ROWS and g.base_rate is not None]
    if favourable is not None and len(comparable) > 1:
        high, low = max(comparable, key=lambda g: g.base_rate), min(comparable, key=lambda g: g.base_rate)
        if high.base_rate - low.base_rate > BASE_RATE_GAP:
            warnings.append(f"The label is {favourable!r} for {high.base_rate:.1%} of {groups.name}={high.group} but "
                            f"{low.base_rate:.1%} of {groups.name}={low.group}: a model trained on it learns that "
                            "gap unless mitigated.")
    return DataAudit(str(groups.name), favourable, result, warnings)


# --- the model -----------------------------------------------------------------------------------
def audit_classifier(groups: pd.Series, y_true: Sequence[Any], y_pred: Sequence[Any], favourable: str,
                     privileged: str | None = None, bootstrap: int = BOOTSTRAP, seed: int = 0) -> ModelAudit:
    """Per-group rates and the four fairness metrics (with bootstrap intervals) for one favourable outcome."""
    truth = np.asarray([str(v) for v in y_true]) == favourable
    chosen = np.asarray([str(v) for v in y_pred]) == favourable
    names, codes = np.unique(groups.astype(str).to_numpy(), return_inverse=True)
    if len(names) < 2:
        raise DataError(f"{groups.name}: only one group ({names[0]!r}) in the data; nothing to compare.")
    counts = _confusion(codes, truth, chosen, len(names), np.arange(len(codes))[None, :])[0]
    sizes = counts.sum(axis=(1, 2))
    privileged = privileged if privileged is not None else str(names[int(np.argmax(sizes))])
    if privileged not in names:
        raise DataError(f"{groups.name}: privileged group {privileged!r} is not in the data; groups: "
                        f"{', '.join(map(str, names))}.")
    p = int(np.where(names == privileged)[0][0])
    scores = [GroupScores(str(n), int(sizes[i]), **_rates(counts[i])) for i, n in enumerate(names)]
    rng, resampled = np.random.default_rng(seed), []
    for start in range(0, bootstrap, CHUNK):  # resamples drawn a few at a time: memory stays flat
        samples = rng.integers(0, len(codes), size=(min(CHUNK, bootstrap - start), len(codes)), dtype=np.int32)
        resampled += [_rates_array(c) for c in _confusion(codes, truth, chosen, len(names), samples)]
    metrics = []
    for g, name in enumerate(names):
        if g == p or sizes[g] < MIN_ROWS:
            continue
        point = _metrics(_rates_array(counts), g, p)
        spread = np.array([list(_metrics(r, g, p).values()) for r in resampled])
        for k, (metric, value) in enumerate(point.items()):
            low, high = (float(np.nanpercentile(spread[:, k], 2.5)), float(np.nanpercentile(spread[:, k], 97.5)))
            bounds = THRESHOLDS[metric]
            flagged = bool(np.isfinite(value) and not bounds[0] <= value <= bounds[1])
            metrics.append(FairnessMetric(metric, str(name), float(value), (low, high), flagged,
                                          _sentence(metric, value, bounds, groups.name, str(name), privileged,
                                                    scores[g], scores[p]) if flagged else ""))
    metrics += _fairlearn(groups, truth, chosen)
    return ModelAudit(str(groups.name), favourable, privileged, scores, metrics)


def audit_regressor(groups: pd.Series, y_true: Sequence[float], y_pred: Sequence[float]) -> ModelAudit:
    truth, predicted = np.asarray(y_true, float), np.asarray(y_pred, float)
    scores = []
    for name, index in groups.groupby(groups.reset_index(drop=True), sort=True).groups.items():
        t, y = truth[index], predicted[index]
        scores.append(GroupScores(str(name), len(index), rmse=float(np.sqrt(np.mean((t - y) ** 2))),
                                  mean_prediction=float(y.mean()), mean_target=float(t.mean())))
    return ModelAudit(str(groups.name), None, None, scores)


def _confusion(codes: np.ndarray, truth: np.ndarray, chosen: np.ndarray, groups: int,
               samples: np.ndarray) -> np.ndarray:
    """[samples, groups, truth, chosen] counts for each row-index sample."""
    cell = (codes * 4 + truth.astype(int) * 2 + chosen.astype(int))[samples]
    offsets = np.arange(len(samples))[:, None] * groups * 4
    flat = np.bincount((cell + offsets).ravel(), minlength=len(samples) * groups * 4)
    return flat.reshape(len(samples), groups, 2, 2)


def _rates_array(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-group rates from [groups, truth, chosen] counts (NaN where a rate has no rows)."""
    tn, fp, fn, tp = (counts[:, t, c].astype(float) for t, c in ((0, 0), (0, 1), (1, 0), (1, 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"accuracy": (tp + tn) / (tp + tn + fp + fn), "selection_rate": (tp + fp) / (tp + tn + fp + fn),
                "true_positive_rate": tp / (tp + fn), "false_positive_rate": fp / (fp + tn),
                "precision": tp / (tp + fp)}


def _rates(counts: np.ndarray) -> dict[str, float | None]:
    rates = _rates_array(counts[None])
    return {k: (None if np.isnan(v[0]) else float(v[0])) for k, v in rates.items()}


def _metrics(rates: dict[str, np.ndarray], g: int, p: int) -> dict[str, float]:
    sr, tpr, fpr = rates["selection_rate"], rates["true_positive_rate"], rates["false_positive_rate"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"statistical_parity_difference": float(sr[g] - sr[p]),
                "disparate_impact_ratio": float(sr[g] / sr[p]) if sr[p] > 0 else float("nan"),
                "equal_opportunity_difference": float(tpr[g] - tpr[p]),
                "average_odds_difference": float(((fpr[g] - fpr[p]) + (tpr[g] - tpr[p])) / 2)}


def _fairlearn(groups: pd.Series, truth: np.ndarray, chosen: np.ndarray) -> list[FairnessMetric]:
    try:
        from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
    except ImportError:
        raise ConfigError("The bias audit needs fairlearn: pip install 'deepwell[fairness]'.") from None

    sensitive = groups.astype(str).to_numpy()
    dp = float(demographic_parity_difference(truth, chosen, sensitive_features=sensitive))
    eo = float(equalized_odds_difference(truth, chosen, sensitive_features=sensitive))
    return [FairnessMetric("demographic_parity_difference (fairlearn)", "all groups", dp, None, dp > 0.1,
                           f"Selection rates differ by up to {dp:.2f} between groups." if dp > 0.1 else ""),
            FairnessMetric("equalized_odds_difference (fairlearn)", "all groups", eo, None, eo > 0.1,
                           f"True or false positive rates differ by up to {eo:.2f} between groups." if eo > 0.1
                           else "")]


def _sentence(metric: str, value: float, bounds: tuple[float, float], attribute: str, group: str,
              privileged: str, scores: GroupScores, reference: GroupScores) -> str:
    outside = f"outside {bounds[0]:g} to {bounds[1]:g}"
    if metric in ("statistical_parity_difference", "disparate_impact_ratio"):
        return (f"{attribute}={group} gets the favourable outcome {scores.selection_rate:.1%} of the time against "
                f"{reference.selection_rate:.1%} for {attribute}={privileged}: {metric.replace('_', ' ')} "
                f"{value:.2f}, {outside}.")
    if metric == "equal_opportunity_difference":
        return (f"Of those who deserve the favourable outcome, {scores.true_positive_rate:.1%} of {attribute}={group}"
                f" get it against {reference.true_positive_rate:.1%} of {attribute}={privileged}: "
                f"equal opportunity difference {value:.2f}, {outside}.")
    return (f"True and false positive rates of {attribute}={group} differ from {attribute}={privileged}'s by "
            f"{value:.2f} on average (average odds difference), {outside}.")
