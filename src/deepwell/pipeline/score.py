"""Score: a fitted network → test, validation and (a sample of) training scores beside the baseline, the
gradient-boosting reference, and the fit diagnosis. Typed results; the run decides what to write."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepwell.data.split import Splits
from deepwell.errors import warn
from deepwell.evaluation.diagnosis import Diagnosis, diagnose
from deepwell.evaluation.reference import reference_scores
from deepwell.evaluation.results import RunMetrics, SplitScores, TrainingFacts
from deepwell.evaluation.scoring import split_scores
from deepwell.inference.network import network_outputs
from deepwell.pipeline.fit import Fitted, metric_fn
from deepwell.training.chunks import ChunkData
from deepwell.training.trainer import TensorData, all_outputs

TRAIN_SAMPLE = 10_000  # training rows re-scored in eval mode for the fit diagnosis


@dataclass
class Scored:
    metrics: RunMetrics
    diagnosis: Diagnosis
    test_outputs: np.ndarray | None  # network outputs on the test split (predictions.csv), None without one


def score(fitted: Fitted, splits: Splits) -> Scored:
    """Every split scored with the final (best-epoch) weights in eval mode. A streamed fit's validation and test
    scores cover every row (its chunks); `test_outputs` are those of the test sample in `splits`."""
    config, train, result = fitted.config, fitted.train, fitted.result
    sample = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:TRAIN_SAMPLE].sort().values
    train_inputs = {k: v[sample] for k, v in train.inputs.items()}
    facts = TrainingFacts(best_epoch=result.best_epoch, epochs_run=len(result.history),
                          stop_reason=result.stop_reason, seconds=round(result.seconds, 3),
                          parameters=fitted.network.parameter_count(), batch_size=int(config.training.batch_size),
                          device=fitted.device, members=[_member_facts(r) for r in fitted.members])
    streamed = fitted.streamed
    metrics = RunMetrics(task=config.task, target=config.target,
                         train=_scores(fitted, train_inputs, train.target[sample].numpy()),
                         validation=_all_scores(fitted, streamed.validation if streamed else fitted.validation),
                         training=facts, split=streamed.sizes if streamed else splits.sizes(),
                         reference=_reference(fitted))
    test_outputs = None
    preprocessor = fitted.preprocessor
    if len(splits.test):
        test_outputs = _outputs(fitted, preprocessor.transform(splits.test))
        metrics.test = split_scores(preprocessor.target, fitted.baseline, test_outputs,
                                    preprocessor.transform_target(splits.test).numpy())
    if streamed is not None and len(streamed.test):
        metrics.test = _all_scores(fitted, streamed.test)
    diagnosis = diagnose(fitted.result.history_frame(), metrics, config.model_dump(mode="json"))
    return Scored(metrics, diagnosis, test_outputs)


def _member_facts(result) -> dict:
    return {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "stop_reason": result.stop_reason.value, "seconds": round(result.seconds, 3)}


def _outputs(fitted: Fitted, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    return network_outputs(fitted.network, inputs, fitted.config.task, torch.device(fitted.device))


def _all_scores(fitted: Fitted, data: TensorData | ChunkData) -> SplitScores:
    outputs, target = all_outputs(fitted.network, data, fitted.config.task, torch.device(fitted.device))
    return split_scores(fitted.preprocessor.target, fitted.baseline, outputs, target.numpy())


def _scores(fitted: Fitted, inputs: dict[str, torch.Tensor], encoded: np.ndarray) -> SplitScores:
    return split_scores(fitted.preprocessor.target, fitted.baseline, _outputs(fitted, inputs), encoded)


def _reference(fitted: Fitted) -> SplitScores | None:
    """Gradient boosting on the same table-like inputs: the achievable error the diagnosis compares with."""
    target, train, validation = fitted.preprocessor.target, fitted.train, fitted.validation
    try:
        scores = reference_scores(fitted.preprocessor.encoder_specs(), train.inputs, train.target.numpy(),
                                  validation.inputs, validation.target.numpy(), target.task, len(target.classes),
                                  metric_fn(target))
    except (ValueError, MemoryError) as exc:
        warn(f"No reference learner for the fit diagnosis ({exc}); it judges bias from the baseline alone.")
        return None
    if scores is None:
        return None
    learner = scores.pop("model")
    return SplitScores(len(validation), {"learner": learner, **scores}, {})
