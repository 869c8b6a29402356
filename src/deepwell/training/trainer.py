"""The training loop.

Data arrives as tensors built once; batches are index slices, so no per-row Python runs while
training. Every epoch starts from a seed derived from (seed, epoch), which makes a run resumed from
its checkpoint end exactly where an uninterrupted run would. Everything around the loop — early stopping,
checkpoints, progress, tracking, pruning — is a callback (training/callbacks/).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepwell.config import TrainingConfig
from deepwell.errors import DataError
from deepwell.evaluation.results import higher_is_better
from deepwell.inference.network import network_outputs, resolve_device
from deepwell.runtime import available_cpus, interrupt_handled, interrupt_pending
from deepwell.task import Task
from deepwell.training.callbacks.base import Callback
from deepwell.training.checkpoint import load_checkpoint
from deepwell.training.chunks import StreamedData
from deepwell.training.schedule import learning_rate_at
from deepwell.training.state import EpochResult, FitResult, StopReason

MetricFn = Callable[[np.ndarray, np.ndarray], dict[str, Any]]
"""(network outputs as probabilities or values, targets) → metrics dict, in the user's units."""


@dataclass
class TensorData:
    inputs: dict[str, torch.Tensor]
    target: torch.Tensor
    weight: torch.Tensor | None = None  # per-row training weights (None: every row counts once)

    def __len__(self) -> int:
        return len(self.target)

    def to(self, device: torch.device) -> TensorData:
        return TensorData({k: v.to(device) for k, v in self.inputs.items()}, self.target.to(device),
                          None if self.weight is None else self.weight.to(device))


def all_outputs(network: nn.Module, data: TensorData | StreamedData, task: Task,
                device: torch.device) -> tuple[np.ndarray, torch.Tensor]:
    """Every row's outputs (eval mode) and its encoded target (on the CPU)."""
    if isinstance(data, StreamedData):
        return data.outputs(network, task)
    return network_outputs(network, data.inputs, task, device), data.target.cpu()


def validation_loss(outputs: np.ndarray, target: torch.Tensor, task: Task) -> float:
    """Mean squared error of standardised values, or the unweighted log loss of probabilities (comparable across
    runs whatever the class weights): what early stopping monitors as `loss`."""
    out = torch.from_numpy(outputs)
    if task.is_regression:
        return float(nn.functional.mse_loss(out, target))
    return float(nn.functional.nll_loss(torch.log(out.clamp_min(1e-12)), target))


def auto_batch_size(rows: int) -> int:
    """About 100 steps per epoch on mid-sized tables, between 32 and 1024 rows per batch."""
    size = 2 ** int(np.round(np.log2(max(rows, 1) / 100)))
    return int(min(1024, max(32, size)))


TrainBatch = tuple[dict[str, Any], torch.Tensor, torch.Tensor | None]
"""(inputs, target, row weights or None) of one training step."""


def epoch_batches(data: TensorData | StreamedData, seed: int, batch_size: int, steps: int,
                  device: torch.device) -> Iterator[TrainBatch]:
    """One epoch's batches, in an order seeded by `seed`: a random permutation of in-memory rows, or chunks
    read from disk in a seeded order and shuffled within a window (training/chunks.py)."""
    if isinstance(data, StreamedData):
        yield from data.epoch_batches(seed, batch_size)
        return
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).to(device)
    for index, inputs, target in batches(data, order, batch_size, steps):
        yield inputs, target, None if data.weight is None else data.weight[index]


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


def native_cpu_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX): elsewhere autocast would
    emulate it, slower than float32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def decoding_workers() -> int:
    """Worker processes decoding files: the CPUs this process may use but one, at least one, at most eight."""
    return max(1, min(8, available_cpus() - 1))


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
    """Fits a network on tensors: `fit(train, validation)` → FitResult, the network left at its best epoch.

    The monitored validation value (`config.monitor`) picks the best epoch; the weights validated (the moving
    average when `config.average_epochs` > 0) are the ones kept. Callbacks run in the order given.
    """

    def __init__(self, network: nn.Module, task: Task, config: TrainingConfig, metric_fn: MetricFn,
                 class_weights: torch.Tensor | None = None, callbacks: Sequence[Callback] = (),
                 parallel: Callable[[nn.Module], nn.Module] | None = None) -> None:
        self.network, self.task, self.config = network, Task(task), config
        self.metric_fn = metric_fn
        self.callbacks = list(callbacks)
        self.device = resolve_device(config.device)
        self.network.to(self.device)
        # the module the training steps run through: the network, or a wrapper sharing its parameters
        # (distributed data parallel on Ray workers, which averages gradients across processes)
        self.stepped = parallel(network) if parallel is not None else network
        weights = class_weights.to(self.device) if class_weights is not None else None
        self.loss_fn = nn.MSELoss() if self.task.is_regression else nn.CrossEntropyLoss(weight=weights)
        self.row_loss_fn = nn.MSELoss(reduction="none") if self.task.is_regression else \
            nn.CrossEntropyLoss(weight=weights, reduction="none")
        self.optimizer = torch.optim.AdamW(parameter_groups(network, config), lr=config.learning_rate,
                                           weight_decay=config.weight_decay)
        self.amp_dtype, self.scaler = self._mixed_precision()
        self.batch_size = int(config.batch_size) if config.batch_size != "auto" else 0
        self.steps_per_epoch = 1
        self.average: WeightAverage | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.result = FitResult()
        self._stop: StopReason | None = None

    # --- what callbacks read and call ------------------------------------------------------------
    @property
    def epochs_done(self) -> int:
        return len(self.result.history)

    @property
    def finished(self) -> bool:
        """No further epoch will run (the budget is spent or a callback stopped training)."""
        return self._stop is not None or self.epochs_done >= self.config.epochs

    def stop(self, reason: StopReason) -> None:
        """Stop after the current epoch (early stopping, pruning)."""
        self._stop = reason

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self, train: TensorData, validation: TensorData, resume_from: Path | None = None) -> FitResult:
        """Train until the epoch budget is spent or a callback stops it; Ctrl-C keeps the best weights so far.
        `resume_from` (a checkpoint file) continues a run exactly where it stopped."""
        self._setup(train)
        train, validation = train.to(self.device), validation.to(self.device)
        if resume_from is not None and Path(resume_from).exists():
            load_checkpoint(Path(resume_from), self)
        started = time.perf_counter() - self.result.seconds
        try:
            self._call("on_fit_start")
            while not self.finished:
                epoch = self._train_epoch(train, self.epochs_done)
                epoch.validation = self._validate_and_keep_best(validation, epoch)
                epoch.seconds = time.perf_counter() - started
                self.result.history.append(epoch)
                self.result.seconds = epoch.seconds
                self._call("on_epoch_end", epoch)
            if self._stop is not None:
                self.result.stop_reason = self._stop
        except KeyboardInterrupt:
            interrupt_handled()
            self.result.stop_reason = StopReason.INTERRUPTED
            self._call("on_interrupt")
        finally:
            self.result.seconds = time.perf_counter() - started
            self._call("on_fit_end", self.result)
        if self.best_state is not None:
            self.network.load_state_dict(self.best_state)
        return self.result

    def load(self, path: Path) -> FitResult:
        """A fit made elsewhere (a Ray worker's last checkpoint): its result, the network at its best weights."""
        load_checkpoint(Path(path), self)
        if self._stop is not None:
            self.result.stop_reason = self._stop
        if self.best_state is not None:
            self.network.load_state_dict(self.best_state)
        return self.result

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _setup(self, train: TensorData) -> None:
        if not self.batch_size:
            self.batch_size = auto_batch_size(len(train))
        self.steps_per_epoch = max(1, -(-len(train) // self.batch_size))
        if self.config.average_epochs > 0:
            self.average = WeightAverage(self.network, self.config.average_epochs * self.steps_per_epoch)

    def _validate_and_keep_best(self, validation: TensorData, epoch: EpochResult) -> dict[str, float]:
        """Validation scores of the weights kept (averaged ones when averaging); the best are remembered."""
        with self.average.applied() if self.average else contextlib.nullcontext():
            scores = self._validate(validation)
            value = scores[self.config.monitor]
            epoch.improved = self._improves(value, self.result.best_value, higher_is_better(self.config.monitor))
            if epoch.improved:
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}
                self.result.best_epoch, self.result.best_value = epoch.epoch, float(value)
        return scores

    # --- resume -----------------------------------------------------------------------------------
    def bookkeeping(self) -> dict[str, Any]:
        """Everything besides tensors that a resumed run needs (stored in the checkpoint as JSON)."""
        result = self.result
        return {"epoch": self.epochs_done, "history": [e.row() for e in result.history],
                "best_epoch": result.best_epoch, "best_value": result.best_value, "seconds": result.seconds,
                "finished": self.finished, "stop_reason": (self._stop or result.stop_reason).value,
                "average_updates": self.average.updates if self.average else 0,
                "callbacks": {c.state_key: c.state_dict() for c in self.callbacks}}

    def restore(self, saved: dict[str, Any], best: dict[str, torch.Tensor] | None,
                averaged: dict[str, torch.Tensor] | None) -> None:
        result = self.result
        result.history = [EpochResult.from_row(row) for row in saved["history"]]
        result.best_epoch, result.best_value = saved["best_epoch"], saved["best_value"]
        result.seconds = saved.get("seconds", 0.0)
        self.best_state = best
        if self.average is not None and averaged is not None:
            self.average.state = {k: v.to(self.device) for k, v in averaged.items()}
            self.average.updates = saved.get("average_updates", 0)
        if saved.get("finished"):
            self._stop = StopReason(saved["stop_reason"])
        states = saved.get("callbacks", {})
        for callback in self.callbacks:
            if callback.state_key in states:
                callback.load_state_dict(states[callback.state_key])

    # --- one epoch --------------------------------------------------------------------------------
    def _mixed_precision(self) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
        """The training steps' autocast dtype (and a gradient scaler for float16), per `mixed_precision`."""
        setting = self.config.mixed_precision
        if setting == "never":
            return None, None
        if self.device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return torch.bfloat16, None
            return torch.float16, torch.amp.GradScaler("cuda")
        native = setting == "always" and self.device.type == "cpu" and native_cpu_bfloat16()
        return (torch.bfloat16, None) if native else (None, None)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @staticmethod
    def _improves(value: float, best: float | None, maximize: bool) -> bool:
        return best is None or (value > best + 1e-6 if maximize else value < best - 1e-6)

    def _train_epoch(self, data: TensorData, epoch: int) -> EpochResult:
        config, steps_per_epoch = self.config, self.steps_per_epoch
        total_steps = steps_per_epoch * config.epochs
        seed = config.seed * 100_003 + epoch
        torch.manual_seed(seed)  # dropout and any other randomness in this epoch
        self.stepped.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for step, (batch, target, weight) in enumerate(epoch_batches(data, seed, self.batch_size, steps_per_epoch,
                                                                      self.device)):
            if len(target) < 2 and seen:  # a single-row remainder would break batch normalisation
                continue
            lr = learning_rate_at(epoch * steps_per_epoch + step, total_steps, config.learning_rate,
                                  config.schedule, config.warmup_fraction)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            with self._autocast():
                output = self.stepped(batch)
                loss = self._loss(output.float(), target, weight)  # the loss in float32 under autocast
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
            if interrupt_pending():  # a Ctrl-C swallowed elsewhere (e.g. during a garbage collection)
                raise KeyboardInterrupt
            loss_sum += loss.detach() * len(target)
            if not self.task.is_regression:
                correct += (output.detach().argmax(dim=1) == target).sum()
            seen += len(target)
            self._call("on_train_batch_end", step)
        return EpochResult(epoch=epoch + 1, lr=lr, train_loss=float(loss_sum) / seen, validation={},
                           train_accuracy=None if self.task.is_regression else float(correct) / seen)

    def _loss(self, output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        """The mean loss; with row weights, their weighted mean (class weights, if any, multiply in)."""
        output = output[:, 0] if self.task.is_regression else output
        if weight is None:
            return self.loss_fn(output, target)
        rows = self.row_loss_fn(output, target)  # class weights, if any, are already in each row's loss
        classes = getattr(self.loss_fn, "weight", None)
        norm = weight if classes is None else weight * classes[target]
        return (rows * weight).sum() / norm.sum().clamp_min(1e-12)

    def _validate(self, data: TensorData | StreamedData) -> dict[str, float]:
        outputs, target = all_outputs(self.network, data, self.task, self.device)
        loss = validation_loss(outputs, target, self.task)
        metrics = self.metric_fn(outputs, target.numpy())
        return {"loss": loss, **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}
