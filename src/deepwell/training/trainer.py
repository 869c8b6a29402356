"""The training loop.

Data arrives as tensors built once; batches are index slices, so no per-row Python runs while
training. Every epoch starts from a seed derived from (seed, epoch), which makes a run resumed from
its checkpoint end exactly where an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepwell.config import TrainingConfig
from deepwell.errors import ConfigError, DataError
from deepwell.evaluation.metrics import higher_is_better
from deepwell.training.checkpoint import load_checkpoint, save_checkpoint
from deepwell.training.progress import EpochProgress
from deepwell.training.schedule import learning_rate_at

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, Any]]
"""(network outputs as probabilities or values, targets) → metrics dict, in the user's units."""


@dataclass
class TensorData:
    inputs: dict[str, torch.Tensor]
    target: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def to(self, device: torch.device) -> TensorData:
        return TensorData({k: v.to(device) for k, v in self.inputs.items()}, self.target.to(device))


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float | None = None
    stop_reason: str = "max epochs"
    seconds: float = 0.0


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'.")
    return torch.device(choice)


def auto_batch_size(rows: int) -> int:
    """About 100 steps per epoch on mid-sized tables, between 32 and 1024 rows per batch."""
    size = 2 ** int(np.round(np.log2(max(rows, 1) / 100)))
    return int(min(1024, max(32, size)))


def predict_outputs(network: nn.Module, inputs: dict[str, torch.Tensor], task: str,
                    device: torch.device, batch_size: int = 4096) -> np.ndarray:
    """Probabilities (classification) or standardised values (regression) for every row, in eval mode."""
    network.eval()
    rows = len(next(iter(inputs.values())))
    outputs = []
    with torch.inference_mode():
        for start in range(0, rows, batch_size):
            batch = {k: v[start:start + batch_size].to(device) for k, v in inputs.items()}
            out = network(batch).float()
            outputs.append(out.softmax(dim=1) if task != "regression" else out[:, 0])
    return torch.cat(outputs).cpu().numpy() if outputs else np.zeros((0,))


def batches(data: TensorData, order: torch.Tensor, batch_size: int, steps: int
            ) -> Iterator[tuple[torch.Tensor, dict[str, Any], torch.Tensor]]:
    """(index, inputs, target) per step; in-memory tensors are just sliced. Inputs decoded per batch (file
    columns too big for memory) are decoded by DataLoader worker processes a few steps ahead, in order, so
    decoding runs in parallel with training and the batches are the ones in-memory training would see."""
    def batch_index(step: int) -> torch.Tensor:
        return order[step * batch_size:(step + 1) * batch_size]

    lazy = {k: v for k, v in data.inputs.items() if getattr(v, "lazy", False)}
    if not lazy:
        for step in range(steps):
            index = batch_index(step)
            yield index, {k: v[index] for k, v in data.inputs.items()}, data.target[index]
        return
    loader = torch.utils.data.DataLoader(
        _DecodedBatches({k: v.to(None) for k, v in lazy.items()}, order.cpu(), batch_size, steps),
        batch_size=None, num_workers=decoding_workers(), prefetch_factor=2,
        generator=torch.Generator().manual_seed(0))  # its own generator: the training RNG stays untouched
    device = data.target.device
    for step, decoded in enumerate(loader):
        if isinstance(decoded, str):  # a file became unreadable while training: the worker's message
            raise DataError(decoded)
        index = batch_index(step)
        inputs = {k: decoded[k].to(device) if k in lazy else v[index] for k, v in data.inputs.items()}
        yield index, inputs, data.target[index]


def decoding_workers() -> int:
    """Worker processes decoding files: all cores but the one training, at least one, at most eight."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class _DecodedBatches(torch.utils.data.Dataset):
    """Step → the decoded lazy columns of that step's batch (run in DataLoader workers)."""

    def __init__(self, columns: dict[str, Any], order: torch.Tensor, batch_size: int, steps: int) -> None:
        self.columns, self.order, self.batch_size, self.steps = columns, order, batch_size, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> dict[str, torch.Tensor] | str:
        index = self.order[step * self.batch_size:(step + 1) * self.batch_size]
        try:
            return {k: v[index] for k, v in self.columns.items()}
        except DataError as exc:  # crosses the process boundary as its message, raised again by the trainer
            return str(exc)


class WeightAverage:
    """Exponential moving average of the weights (and batch-norm statistics), used for validation and as the
    trained model. Averaging acts like annealing the learning rate at every epoch, so validation curves are
    smoother and early stopping on small validation sets is much less a matter of luck."""

    def __init__(self, network: nn.Module, horizon_steps: float) -> None:
        self.network = network
        self.decay = 1.0 - 1.0 / max(horizon_steps, 1.0)
        self.updates = 0
        # state_dict() tensors share storage with the live weights (loading copies in place), so one lookup serves
        live = {k: v.detach() for k, v in network.state_dict().items()}
        self.state = {k: v.clone() for k, v in live.items()}
        self._floats = [k for k, v in live.items() if v.is_floating_point()]
        self._live_floats = [live[k] for k in self._floats]
        self._counters = [(k, live[k]) for k, v in live.items() if not v.is_floating_point()]

    def update(self) -> None:
        # warm-up: the first updates follow the weights closely, so the random start is soon forgotten
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_([self.state[k] for k in self._floats], self._live_floats, 1 - decay)
        for key, value in self._counters:
            self.state[key].copy_(value)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The network holds the averaged weights inside the block and its own weights again after."""
        own = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
        self.network.load_state_dict(self.state)
        try:
            yield
        finally:
            self.network.load_state_dict(own)


def parameter_groups(network: nn.Module, config: TrainingConfig) -> list[dict[str, Any]]:
    """Learning-rate groups: modules that set `learning_rate_scale` (a pretrained encoder being fine-tuned)
    use it for all their parameters; other embedding tables learn 10× faster without weight decay."""
    scaled: dict[float, list[nn.Parameter]] = {}
    taken: set[int] = set()
    for module in network.modules():
        scale = getattr(module, "learning_rate_scale", None)
        if scale is not None:
            params = [p for p in module.parameters() if id(p) not in taken]
            scaled.setdefault(float(scale), []).extend(params)
            taken |= {id(p) for p in params}
    embedding_ids = {id(p) for m in network.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
                     for p in m.parameters() if id(p) not in taken}
    rest = [p for p in network.parameters() if id(p) not in taken]
    groups = [{"params": [p for p in rest if id(p) not in embedding_ids], "lr_scale": 1.0},
              {"params": [p for p in rest if id(p) in embedding_ids], "lr_scale":
               config.embedding_learning_rate_scale, "weight_decay": 0.0}]
    groups += [{"params": params, "lr_scale": scale} for scale, params in scaled.items()]
    return [g for g in groups if g["params"]]


class Trainer:
    def __init__(self, network: nn.Module, task: str, config: TrainingConfig, metric_fn: MetricFn,
                 checkpoint_path: Path | None = None, class_weights: torch.Tensor | None = None,
                 show_progress: bool = True, monitor_metric: str = "accuracy",
                 on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.network, self.task, self.config = network, task, config
        self.on_epoch_end = on_epoch_end  # e.g. experiment tracking; gets each epoch's history row
        self.metric_fn = metric_fn
        self.checkpoint_path = checkpoint_path
        self.show_progress = show_progress
        self.display_metric = monitor_metric
        self.device = resolve_device(config.device)
        self.network.to(self.device)
        weights = class_weights.to(self.device) if class_weights is not None else None
        self.loss_fn = nn.MSELoss() if task == "regression" else nn.CrossEntropyLoss(weight=weights)
        self.optimizer = torch.optim.AdamW(parameter_groups(network, config), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.amp_dtype, self.scaler = self._mixed_precision()

    def _mixed_precision(self) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
        if self.device.type != "cuda" or not self.config.mixed_precision:
            return None, None
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def fit(self, train: TensorData, validation: TensorData, resume: bool = False) -> FitResult:
        config = self.config
        batch_size = int(config.batch_size)
        train, validation = train.to(self.device), validation.to(self.device)
        steps_per_epoch = max(1, -(-len(train) // batch_size))
        total_steps = steps_per_epoch * config.epochs
        monitor = config.monitor
        maximize = higher_is_better(monitor)
        result = FitResult()
        self.average = (WeightAverage(self.network, config.average_epochs * steps_per_epoch)
                        if config.average_epochs > 0 else None)
        best_state: dict[str, torch.Tensor] | None = None
        start_epoch, bad_epochs = 0, 0
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            best_state, saved, averaged = load_checkpoint(self.checkpoint_path, self.network, self.optimizer)
            if self.average is not None and averaged is not None:
                self.average.state = {k: v.to(self.device) for k, v in averaged.items()}
                self.average.updates = saved.get("average_updates", 0)
            start_epoch, bad_epochs = saved["epoch"], saved["bad_epochs"]
            result.history, result.best_epoch, result.best_value = saved["history"], saved["best_epoch"], \
                saved["best_value"]
            result.seconds = saved.get("seconds", 0.0)
            if saved.get("finished"):
                result.stop_reason = saved["stop_reason"]
                start_epoch = config.epochs
        started = time.perf_counter() - result.seconds
        progress = EpochProgress(config.epochs, steps_per_epoch, self.display_metric, self.show_progress)
        with progress:
            progress.start(start_epoch)
            try:
                for epoch in range(start_epoch, config.epochs):
                    row = self._train_epoch(train, epoch, batch_size, steps_per_epoch, total_steps, progress)
                    with self.average.applied() if self.average else contextlib.nullcontext():
                        row.update(self._validate(validation))
                        value = row[f"val_{monitor}"]
                        improved = self._improves(value, result.best_value, maximize)
                        if improved:  # the weights validated: averaged ones when averaging
                            best_state = {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}
                    row["seconds"] = time.perf_counter() - started
                    if improved:
                        result.best_epoch, result.best_value, bad_epochs = epoch + 1, float(value), 0
                    else:
                        bad_epochs += 1
                    result.history.append(row)
                    if self.on_epoch_end is not None:
                        self.on_epoch_end(row)
                    progress.end_epoch(row, improved)
                    stop = bad_epochs >= config.patience
                    if stop:
                        result.stop_reason = "early stopping"
                    last = stop or epoch + 1 == config.epochs
                    if self.checkpoint_path is not None and ((epoch + 1) % config.checkpoint_every == 0 or last):
                        result.seconds = time.perf_counter() - started
                        save_checkpoint(self.checkpoint_path, self.network, self.optimizer, best_state,
                                        self.average.state if self.average else None, {
                                            "epoch": epoch + 1, "bad_epochs": bad_epochs, "history": result.history,
                                            "best_epoch": result.best_epoch, "best_value": result.best_value,
                                            "average_updates": self.average.updates if self.average else 0,
                                            "seconds": result.seconds, "finished": last,
                                            "stop_reason": result.stop_reason})
                    if stop:
                        break
            except KeyboardInterrupt:
                result.stop_reason = "interrupted"
        result.seconds = time.perf_counter() - started
        if best_state is not None:
            self.network.load_state_dict(best_state)
        return result

    @staticmethod
    def _improves(value: float, best: float | None, maximize: bool) -> bool:
        return best is None or (value > best + 1e-6 if maximize else value < best - 1e-6)

    def _train_epoch(self, data: TensorData, epoch: int, batch_size: int, steps_per_epoch: int,
                     total_steps: int, progress: EpochProgress) -> dict[str, Any]:
        config = self.config
        seed = config.seed * 100_003 + epoch
        torch.manual_seed(seed)  # dropout and any other randomness in this epoch
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).to(self.device)
        self.network.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for step, (index, batch, target) in enumerate(batches(data, order, batch_size, steps_per_epoch)):
            if len(index) < 2 and seen:  # a single-row remainder would break batch normalisation
                continue
            lr = learning_rate_at(epoch * steps_per_epoch + step, total_steps, config.learning_rate,
                                  config.schedule, config.warmup_fraction)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            with self._autocast():
                output = self.network(batch)
                loss = self.loss_fn(output[:, 0] if self.task == "regression" else output, target)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            if self.average is not None:
                self.average.update()
            loss_sum += loss.detach() * len(index)
            if self.task != "regression":
                correct += (output.detach().argmax(dim=1) == target).sum()
            seen += len(index)
            progress.step()
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": float(loss_sum) / seen}
        if self.task != "regression":
            row["train_accuracy"] = float(correct) / seen
        return row

    def _validate(self, data: TensorData) -> dict[str, Any]:
        outputs = predict_outputs(self.network, data.inputs, self.task, self.device)
        target = data.target.cpu()
        out = torch.from_numpy(outputs)
        if self.task == "regression":
            loss = float(nn.functional.mse_loss(out, target))
        else:  # unweighted log loss: comparable across runs whatever the class weights
            loss = float(nn.functional.nll_loss(torch.log(out.clamp_min(1e-12)), target))
        metrics = self.metric_fn(outputs, target.numpy())
        return {"val_loss": loss, **{f"val_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}}
