"""Fit: a resolved configuration and its splits → fitted preprocessing + trained network.

Knows nothing of run folders, MLflow or reports: the run (pipeline/run.py), tuning, the capacity search, the
scikit-learn estimators and the benchmarks all call `fit` and decide themselves what to keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepwell import __version__
from deepwell.config import Config
from deepwell.data.split import Splits
from deepwell.evaluation.metrics import classification_metrics, fit_baseline, regression_metrics
from deepwell.features.pipeline import Preprocessor
from deepwell.features.target import TargetEncoder
from deepwell.model import Model
from deepwell.models.network import EnsembleNetwork, TabularNetwork
from deepwell.pipeline.presets import member_configs
from deepwell.pipeline.race import resolve_periodic_scale
from deepwell.pipeline.streaming import Stream, StreamedTensors, stream_tensors
from deepwell.runs.layout import RunFolder
from deepwell.runtime import use_threads
from deepwell.training.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar, StopAfter
from deepwell.training.chunks import ChunkData
from deepwell.training.state import FitResult, StopReason
from deepwell.training.trainer import MetricFn, TensorData, Trainer, validation_loss


@dataclass
class Fitted:
    """The outcome of `fit`: the network is at its best epoch (in eval mode on `device`)."""

    config: Config
    preprocessor: Preprocessor
    network: TabularNetwork | EnsembleNetwork
    result: FitResult
    baseline: dict[str, Any]  # the trivial model fitted on the training split
    device: str
    train: TensorData  # the tensors trained and validated on (scoring re-uses them)
    validation: TensorData
    members: list[FitResult] = field(default_factory=list)  # an ensemble's members, in training order
    unmitigated: TabularNetwork | None = None  # --mitigate reductions: the network trained without it
    streamed: StreamedTensors | None = None  # a streamed table's every row on disk (`train`, `validation`:
    # tensors of its samples); scoring reads it, `release` deletes it

    def release(self) -> None:
        """Delete what a streamed fit keeps on disk (scoring is done)."""
        if self.streamed is not None:
            self.streamed.release()

    def meta(self) -> dict[str, Any]:
        config = self.config
        return {"deepwell_version": __version__, "task": config.task.value, "target": config.target,
                "baseline": self.baseline, "parameters": self.network.parameter_count(),
                "best_epoch": self.result.best_epoch}

    def model(self, run_dir: Path | None = None) -> Model:
        return Model(self.preprocessor, self.network, self.meta(), run_dir=run_dir)

    def best_validation(self, metric: str) -> float:
        """The validation value of `metric` of the weights returned (the best epoch; an ensemble's average)."""
        if not self.members:
            return float(self.result.history[self.result.best_epoch - 1].validation[metric])
        from deepwell.inference.network import network_outputs

        outputs = network_outputs(self.network, self.validation.inputs, self.config.task, torch.device(self.device))
        if metric == "loss":
            return validation_loss(outputs, self.validation.target.cpu(), self.config.task)
        return float(metric_fn(self.preprocessor.target)(outputs, self.validation.target.numpy())[metric])


def fit_preprocessor(config: Config, splits: Splits, stream: Stream | None = None) -> Preprocessor:
    """Fitted on the training split; a streamed table's features fit from its summaries where they can."""
    return Preprocessor.fit(splits.train, config.columns, TargetEncoder(config.target, config.task),
                            summaries=None if stream is None else stream.summaries)


def fit(config: Config, splits: Splits, *, preprocessor: Preprocessor | None = None,
        callbacks: Sequence[Callback] = (), progress: bool = False, checkpoint: Path | None = None,
        resume: bool = False, stream: Stream | None = None) -> Fitted:
    """Train a network — or each member of an ensemble, one after another — on `splits.train`, early-stopped on
    `splits.validation`.

    `callbacks` run after early stopping and before the progress bar and the checkpoint (saved every
    `training.checkpoint_every` epochs to `checkpoint`, one file per member, which `resume` continues from).
    Ctrl-C during a member keeps the members trained so far (the interrupted one at its best epoch).
    A streamed table (`stream`, whose samples `splits` holds) is transformed into chunks on disk and the
    networks train on every row (pipeline/streaming.py); quick decisions (the race) use the samples.
    """
    use_threads(config.training.threads)
    _seed(config.training.seed)
    if config.cluster.backend == "ray":
        from deepwell.distributed.train import check_distributable

        check_distributable(config)
    preprocessor = preprocessor or fit_preprocessor(config, splits, stream)
    target = preprocessor.target
    train = TensorData(preprocessor.transform(splits.train), preprocessor.transform_target(splits.train),
                       row_weights(splits.train, config))
    validation = TensorData(preprocessor.transform(splits.validation),
                            preprocessor.transform_target(splits.validation))
    outputs = 1 if config.task.is_regression else len(target.classes)

    def train_for(candidate: Config, epochs: int) -> FitResult:  # a race's short training (pipeline/race.py)
        _seed(candidate.training.seed)
        return _fit_local(candidate, preprocessor, train, validation, outputs, [StopAfter(epochs)],
                          progress=False, checkpoint=None, resume=False)[1]

    config = resolve_periodic_scale(config, len(validation.target), bool(preprocessor.numeric_names()), train_for)
    if config.fairness.mitigate == "reductions":
        return _fit_reductions(config, preprocessor, splits, train, validation, callbacks, progress)
    streamed = None if stream is None else stream_tensors(stream, config, preprocessor, progress)
    members = member_configs(config)
    networks, results = [], []
    try:
        for index, member in enumerate(members):
            path = None if checkpoint is None else RunFolder.member_checkpoint(checkpoint, index)
            _seed(member.training.seed)
            network, result, device = _fit_one(member, preprocessor, streamed.train if streamed else train,
                                               streamed.validation if streamed else validation, outputs,
                                               callbacks, progress, path, resume)
            networks.append(network)
            results.append(result)
            if result.stop_reason == StopReason.INTERRUPTED:
                break
    except BaseException:
        if streamed is not None:
            streamed.release()
        raise
    y_train = train.target.numpy()
    baseline = fit_baseline(config.task, target.unscale(y_train) if config.task.is_regression else y_train, outputs)
    if len(members) == 1:
        return Fitted(config, preprocessor, networks[0], results[0], baseline, device, train, validation,
                      streamed=streamed)
    config = config.model_copy(deep=True)
    config.model.ensemble_size = len(networks)
    ensemble = EnsembleNetwork(networks, config.model).to(device).eval()
    return Fitted(config, preprocessor, ensemble, ensemble_result(results), baseline, device, train, validation,
                  members=results, streamed=streamed)


def _fit_one(config: Config, preprocessor: Preprocessor, train: TensorData | ChunkData,
             validation: TensorData | ChunkData, outputs: int,
             callbacks: Sequence[Callback], progress: bool, checkpoint: Path | None,
             resume: bool) -> tuple[TabularNetwork, FitResult, str]:
    """One network: trained here, or by Ray Train's workers (`cluster.backend: ray`)."""
    if config.cluster.backend != "ray":
        return _fit_local(config, preprocessor, train, validation, outputs, callbacks, progress, checkpoint, resume)
    from deepwell.distributed.train import fit_on_ray

    chain = [*callbacks, *([ProgressBar(config.task.primary_metric)] if progress else [])]
    return fit_on_ray(config, preprocessor, train, validation, outputs, chain,
                      class_weights(config, targets_of(train), outputs), checkpoint, resume)


def _fit_local(config: Config, preprocessor: Preprocessor, train: TensorData | ChunkData,
               validation: TensorData | ChunkData, outputs: int,
               callbacks: Sequence[Callback], progress: bool, checkpoint: Path | None,
               resume: bool) -> tuple[TabularNetwork, FitResult, str]:
    network = TabularNetwork(preprocessor.encoder_specs(), config.model, outputs)
    chain: list[Callback] = [EarlyStopping(config.training.patience), *callbacks]
    if progress:
        chain.append(ProgressBar(config.task.primary_metric))
    if checkpoint is not None:
        chain.append(Checkpoint(checkpoint, config.training.checkpoint_every))
    trainer = Trainer(network, config.task, config.training, metric_fn(preprocessor.target),
                      class_weights=class_weights(config, targets_of(train), outputs), callbacks=chain)
    result = trainer.fit(train, validation, resume_from=checkpoint if resume else None)
    return network.eval(), result, str(trainer.device)


def _fit_reductions(config: Config, preprocessor: Preprocessor, splits: Splits, train: TensorData,
                    validation: TensorData, callbacks: Sequence[Callback], progress: bool) -> Fitted:
    """`--mitigate reductions`: one network trained as usual (early-stopped; the run's unmitigated comparison), then
    fairlearn's ExponentiatedGradient over networks trained for as many epochs with its labels and weights; the
    mixture it keeps is the model (fairness/reductions.py)."""
    from deepwell.fairness.groups import group_labels
    from deepwell.fairness.reductions import exponentiated_gradient

    _seed(config.training.seed)
    first, result, device = _fit_one(config, preprocessor, train, validation, 2, callbacks, progress, None, False)
    trainer = _RowTrainer(config, preprocessor, train, max(1, result.best_epoch), torch.device(device))
    networks, weights = exponentiated_gradient(group_labels(splits.train, config.fairness.sensitive),
                                               train.target.numpy(), config.fairness.constraint, trainer,
                                               iterations=config.fairness.reductions_iterations)
    config = config.model_copy(deep=True)
    config.model.ensemble_size = len(networks)
    mixture = EnsembleNetwork(networks, config.model, weights).to(device).eval()
    baseline = fit_baseline(config.task, train.target.numpy(), 2)
    return Fitted(config, preprocessor, mixture, result, baseline, device, train, validation, unmitigated=first)


@dataclass
class _RowTrainer:
    """ExponentiatedGradient's networks: trained on rows of the training tensors with its labels and weights, for the
    epochs the unconstrained network needed (its labels are not the validation split's, so nothing to stop on)."""

    config: Config
    preprocessor: Preprocessor
    train: TensorData
    epochs: int
    device: torch.device

    def fit(self, rows: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> TabularNetwork:
        index = torch.tensor(rows)
        data = TensorData({k: v[index] for k, v in self.train.inputs.items()}, torch.tensor(labels),
                          torch.tensor(weights, dtype=torch.float32))
        check = TensorData({k: v[:2000] for k, v in data.inputs.items()}, data.target[:2000])
        config = self.config.model_copy(deep=True)
        config.training.epochs, config.training.patience = self.epochs, self.epochs
        config.training.class_weight = "none"  # the reduction's weights carry the costs
        return _fit_local(config, self.preprocessor, data, check, 2, [], False, None, False)[0]

    def decide(self, network: torch.nn.Module, rows: np.ndarray) -> np.ndarray:
        from deepwell.inference.network import network_outputs

        inputs = {k: v[torch.tensor(rows)] for k, v in self.train.inputs.items()}
        return network_outputs(network, inputs, self.config.task, self.device).argmax(axis=1)

    def __deepcopy__(self, memo: dict[int, Any]) -> _RowTrainer:  # scikit-learn's clone copies parameters: share
        return self


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def ensemble_result(results: list[FitResult]) -> FitResult:
    """What the run reports for an ensemble: the first member's curves (the configured architecture), every
    member's training time, and an interruption if any member was interrupted."""
    first = results[0]
    interrupted = any(r.stop_reason == StopReason.INTERRUPTED for r in results)
    return FitResult(history=first.history, best_epoch=first.best_epoch, best_value=first.best_value,
                     stop_reason=StopReason.INTERRUPTED if interrupted else first.stop_reason,
                     seconds=sum(r.seconds for r in results))


def targets_of(data: TensorData | ChunkData) -> np.ndarray:
    return data.targets().numpy() if isinstance(data, ChunkData) else data.target.numpy()


def row_weights(rows: pd.DataFrame, config: Config) -> torch.Tensor | None:
    """The weight column's weights, times the fairness reweighing's (None when there are neither)."""
    weights = None if config.weight_column is None else pd.to_numeric(rows[config.weight_column]).to_numpy(float)
    if config.fairness.mitigate == "reweigh":
        from deepwell.fairness.groups import group_labels
        from deepwell.fairness.mitigation import reweigh

        factors = reweigh(group_labels(rows, config.fairness.sensitive), rows[config.target])
        weights = factors if weights is None else weights * factors
    return None if weights is None else torch.tensor(weights.astype(np.float32))


def metric_fn(target: TargetEncoder) -> MetricFn:
    """(network outputs, encoded targets) → the task's metrics in the user's units."""
    if target.task.is_regression:
        return lambda out, y: regression_metrics(target.unscale(y), target.unscale(out))
    return lambda out, y: classification_metrics(y, out, target.classes, detailed=False)


def class_weights(config: Config, y_train: np.ndarray, n_classes: int) -> torch.Tensor | None:
    if config.task.is_regression or config.training.class_weight == "none":
        return None
    counts = np.bincount(y_train, minlength=n_classes).astype(float)
    return torch.tensor(len(y_train) / (n_classes * np.clip(counts, 1, None)), dtype=torch.float32)
