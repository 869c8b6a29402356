"""`finetune`: a causal LM fine-tuned on prompt → completion pairs, in a run folder like every training run.

    examples (generation/data.py) → seeded held-out split → tokens with labels on completions (tokens.py) →
    base + adapter (model.py) → evaluate before → epochs (accumulation, warmup + linear decay, clipping, bf16
    autocast on a GPU, gradient checkpointing) with the held-out loss each epoch; the best epoch's generator is
    saved after that epoch (a crash keeps it) → evaluate after → metrics, diagnosis, report, MLflow.

Run folder: config.yaml, run.json (kind: generation), history.csv, metrics.json (before / after), samples.json,
diagnosis.json, report.html, learning_curves.png, model/ (the generator folder; merged/ with merge=True).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepwell.config import FineTune, FinetuneConfig
from deepwell.errors import ConfigError, DataError
from deepwell.generation.data import Example, read_examples
from deepwell.generation.evaluate import Scores, evaluate, held_out_loss
from deepwell.generation.model import Generator, load_base, with_adapter
from deepwell.generation.tokens import Encoded, batch_count, batches, encode
from deepwell.models import base_folder
from deepwell.runs.files import write_json, write_text
from deepwell.runs.layout import RunFolder, RunStatus


def finetune(base: str | Path, data: str | Path, *, method: str | None = None,
             config: FinetuneConfig | dict[str, Any] | str | Path | None = None, output: str | Path = "runs",
             name: str | None = None, documents: str | Path | None = None, epochs: int | None = None,
             learning_rate: float | None = None, seed: int | None = None, merge: bool = False,
             quiet: bool = False, track: bool | None = None, tracking_uri: str | None = None,
             experiment: str | None = None) -> Generator:
    """Fine-tune the causal LM in `base` (a Hugging Face folder on disk, or an installed model package) on `data`
    (a JSONL file of prompt/completion or chat lines, or an InstructLab taxonomy folder; `documents`: the local
    folder holding the knowledge documents its qna.yaml files name). Returns the `Generator` at its best epoch;
    the run folder holds it in model/ (and a merged model folder in merged/ with `merge`)."""
    settings = _config(config, method=method, epochs=epochs, learning_rate=learning_rate, seed=seed)
    from deepwell.features.pretrained import resolve_pretrained

    base_path = resolve_pretrained(str(base))
    examples = read_examples(data, documents)
    train, held_out = split(examples.items, settings.validation_fraction, settings.seed)
    torch.manual_seed(settings.seed)
    model, tokenizer = load_base(base_path)
    run = RunFolder.create(output, name, Path(str(data)).stem or "finetune")
    info = {"method": settings.method.value, "max_length": settings.max_length,
            "generation": settings.generation.model_dump(mode="json"), "base_model_type": model.config.model_type,
            **({"base": base_folder.identity(str(base), base_path)} if settings.method is not FineTune.FULL else {})}
    write_text(run.config, _yaml(settings))
    run.write_info(kind="generation", status=RunStatus.RUNNING.value, base=str(base_path), data=str(data),
                   source=examples.source, files=examples.files[:50], examples={"train": len(train),
                                                                               "held_out": len(held_out)})
    return _Run(run, settings, Generator(with_adapter(model, settings, base_path), tokenizer, info),
                train, held_out, quiet, _tracker(track, tracking_uri, experiment, output)).execute(merge)


def _config(config, **overrides) -> FinetuneConfig:
    if isinstance(config, (str, Path)):
        import yaml

        try:
            config = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{config}: cannot read the fine-tuning config ({exc}).") from None
    data = config.model_dump() if isinstance(config, FinetuneConfig) else dict(config or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return FinetuneConfig.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"fine-tuning config: {exc}") from None


def _yaml(settings: FinetuneConfig) -> str:
    import yaml

    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)


def _tracker(track, uri, experiment, output):
    from deepwell.tracking.tracker import MlflowTracker, TrackingOptions

    return MlflowTracker(TrackingOptions(enabled=track, uri=uri, experiment=experiment, home=Path(output)))


def split(items: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Seeded held-out split (at least one example each side); documents (no prompt) always train."""
    questions = [i for i, e in enumerate(items) if e.prompt or e.messages]
    if len(questions) < 2:
        raise DataError(f"{len(questions)} prompt/completion example(s): at least 2 are needed (one to train on, "
                        "one held out to measure).")
    order = np.random.default_rng(seed).permutation(questions)
    held = set(order[:max(1, round(fraction * len(questions)))].tolist())
    return [e for i, e in enumerate(items) if i not in held], [items[i] for i in sorted(held)]


class _Run:
    """One fine-tuning run's collaborators: the loop reads top to bottom in `execute`."""

    def __init__(self, run: RunFolder, settings: FinetuneConfig, generator: Generator, train: list[Example],
                 held_out: list[Example], quiet: bool, tracker) -> None:
        from deepwell.inference.network import resolve_device

        self.run, self.settings, self.generator, self.quiet, self.tracker = run, settings, generator, quiet, tracker
        self.train, self.held_out = train, held_out
        self.device = resolve_device(settings.device)
        self.model = generator.model.to(self.device)
        self.bf16 = settings.precision == "bf16" or (settings.precision == "auto" and self.device.type == "cuda"
                                                      and torch.cuda.is_bf16_supported())
        tokenizer = generator.tokenizer
        prompt = lambda e: generator.prompt_text(e.prompt, list(e.messages) or None)  # noqa: E731
        self.train_tokens = encode(train, tokenizer, prompt, settings.max_length)
        self.held_tokens = encode(held_out, tokenizer, prompt, settings.max_length)

    def execute(self, merge: bool) -> Generator:
        tags = {"kind": "generation", "task": "generation"}
        self.tracker.start(self.run, self.settings.model_dump(mode="json"), tags)
        try:
            self._checkpointing()
            self._say(memory_estimate(self.model, self.settings, self.train_tokens, self.bf16, self.device))
            before = self._evaluate()
            self._say(f"before: held-out loss {before.loss:.4f}, exact match {before.exact_match}")
            history, best = self._epochs(before.loss)
            after = self._evaluate()
            self._say(f"after:  held-out loss {after.loss:.4f}, exact match {after.exact_match}")
            self._finish(before, after, history, best, merge)
        except BaseException as exc:
            status = RunStatus.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
            self.run.write_info(status=status.value, error=f"{type(exc).__name__}: {exc}"[:2000])
            self.tracker.fail(f"{type(exc).__name__}: {exc}")
            raise
        return self.generator

    def _say(self, text: str) -> None:
        if not self.quiet:
            from rich.console import Console

            Console(stderr=True).print(text, highlight=False)

    def _checkpointing(self) -> None:
        wanted = self.settings.gradient_checkpointing
        if wanted is True or (wanted == "auto" and self.device.type == "cuda"):
            if hasattr(self.model, "activation_checkpointing_enable"):  # the name transformers 5 prefers
                self.model.activation_checkpointing_enable({"use_reentrant": False})
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if self.settings.method is not FineTune.FULL:
                self.model.enable_input_require_grads()  # the frozen embeddings' output must carry gradients

    def _evaluate(self) -> Scores:
        s = self.settings
        with self._autocast():
            return evaluate(self.generator, self.held_out, self.held_tokens, s.batch_size, s.eval_examples, s.samples)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _epochs(self, start_loss: float) -> tuple[pd.DataFrame, int]:
        s = self.settings
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=s.rate(), weight_decay=s.weight_decay)
        per_epoch = math.ceil(batch_count(self.train_tokens, s.batch_size, s.batching, s.max_length)
                              / s.gradient_accumulation)
        total = per_epoch * s.epochs
        warm = max(1, int(s.warmup * total))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))
        rows = [{"epoch": 0, "lr": 0.0, "train_loss": None, "val_loss": start_loss,
                 "val_perplexity": math.exp(min(start_loss, 50)), "seconds": 0.0}]
        best, best_loss, waited = 0, start_loss, 0
        for epoch in range(1, s.epochs + 1):
            started = time.perf_counter()
            train_loss = self._train_epoch(epoch, optimizer, schedule, trainable)
            with self._autocast():
                val = held_out_loss(self.model, self.held_tokens, self.generator.tokenizer.pad_token_id,
                                    s.batch_size, self.device)
            rows.append({"epoch": epoch, "lr": schedule.get_last_lr()[0], "train_loss": train_loss, "val_loss": val,
                         "val_perplexity": math.exp(min(val, 50)), "seconds": time.perf_counter() - started})
            self.tracker.log_epoch(rows[-1])
            write_text(self.run.history, pd.DataFrame(rows).to_csv(index=False))
            self._say(f"epoch {epoch}/{s.epochs}: train loss {train_loss:.4f}, held-out loss {val:.4f}")
            if val < best_loss:
                best, best_loss, waited = epoch, val, 0
                self._best = {k: v.detach().clone() for k, v in self._learned().items()}
                self.generator.save(self.run.model)  # the best so far survives a crash
            else:
                waited += 1
                if waited >= s.patience:
                    break
        if best > 0:
            self.model.load_state_dict(self._best, strict=False)
        else:
            self.generator.save(self.run.model)
        self.model.eval()
        return pd.DataFrame(rows), best

    def _learned(self) -> dict[str, torch.Tensor]:
        names = {n for n, p in self.model.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.model.state_dict().items() if k in names}

    def _batches(self, epoch: int):
        s = self.settings
        return batches(self.train_tokens, s.batch_size, s.batching, self.generator.tokenizer.pad_token_id,
                       s.max_length, s.seed * 1000 + epoch)

    def _train_epoch(self, epoch: int, optimizer, schedule, trainable) -> float:
        s = self.settings
        self.model.train()
        torch.manual_seed(s.seed * 1000 + epoch)  # dropout
        losses, weights = [], []
        for step, batch in enumerate(self._batches(epoch), start=1):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with self._autocast():
                loss = self.model(**batch).loss
            (loss / s.gradient_accumulation).backward()
            losses.append(loss.item())
            weights.append(int((batch["labels"][:, 1:] != -100).sum()))
            if step % s.gradient_accumulation == 0:
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
        if any(p.grad is not None for p in trainable):  # a last, partial accumulation
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return float(np.average(losses, weights=weights)) if losses else float("nan")

    def _finish(self, before: Scores, after: Scores, history: pd.DataFrame, best: int, merge: bool) -> None:
        from deepwell.generation.doctor import diagnose_curve

        run = self.run
        self.generator.path = run.model
        self.generator.save(run.model)
        if merge:
            self.generator.merge(run.path / RunFolder.MERGED)
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        metrics = {"kind": "generation", "method": self.settings.method.value, "best_epoch": best,
                   "epochs_run": int(history["epoch"].max()), "train_examples": len(self.train),
                   "held_out_examples": len(self.held_out), "trainable_parameters": trainable,
                   "parameters": sum(p.numel() for p in self.model.parameters()),
                   "before": before.to_dict() | {"samples": None}, "after": after.to_dict() | {"samples": None}}
        write_json(run.metrics, metrics)
        write_json(run.path / RunFolder.SAMPLES, [{**b, "answer_before": b["answer"], "answer": a["answer"]}
                                        for b, a in zip(before.samples, after.samples, strict=False)])
        diagnosis = diagnose_curve(history, best, self.settings)
        write_json(run.diagnosis, diagnosis.to_dict())
        from deepwell.reports.build import build_report

        build_report(run.path)
        run.write_info(status=RunStatus.FINISHED.value, model=str(run.model))
        from deepwell.tracking.runs import generation_flat

        self.tracker.finish(run, generation_flat(metrics), diagnosis.verdict.value, "finished", pyfunc=False)
        if self.tracker.summary():
            run.write_info(tracking=self.tracker.summary())


def memory_estimate(model, settings: FinetuneConfig, encoded: list[Encoded], bf16: bool,
                    device: torch.device) -> str:
    """What training will hold: weights, gradients and AdamW's two moments for what learns, and activations
    (about 34 bytes × hidden size per token per layer without checkpointing, the usual transformer estimate)."""
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    config = getattr(model, "config", None) or model.get_base_model().config
    hidden = int(getattr(config, "hidden_size", getattr(config, "n_embd", 768)))
    layers = int(getattr(config, "num_hidden_layers", getattr(config, "n_layer", 12)))
    longest = min(settings.max_length, max((len(e.ids) for e in encoded), default=1))
    tokens = settings.batch_size * (settings.max_length if settings.batching == "pack" else longest)
    checkpointing = settings.gradient_checkpointing is True or (settings.gradient_checkpointing == "auto"
                                                                and device.type == "cuda")
    per_token = hidden * (2 if checkpointing else 34 * layers) * (0.5 if bf16 else 1)
    activations = tokens * per_token
    total = weight_bytes + trainable * 4 * 3 + activations
    return (f"memory estimate on {device.type}: {_size(total)} (weights {_size(weight_bytes)}, gradients and "
            f"optimizer {_size(trainable * 12)}, activations {_size(activations)} for {tokens:,} tokens a step); "
            f"{trainable:,} of {params:,} parameters learn ({100 * trainable / params:.3f}%)")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
