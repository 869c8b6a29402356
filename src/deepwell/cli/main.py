"""deepwell command line. Each command parses its arguments, calls the Python API and renders the result.

Errors a user can cause (DeepwellError) are printed as one paragraph and exit with code 2. Heavy modules
(pandas, torch, the renderings) are imported inside the commands, so `deepwell --help` answers at once.
"""

from __future__ import annotations

import os
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel

from deepwell import __version__
from deepwell.errors import DeepwellError
from deepwell.runtime import prefer_passive_waiting, remember_interrupts

app = typer.Typer(help="deepwell: train, evaluate and use deep networks on your own data.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)  # plain help: no "<bool>" placeholders on flags
console = Console()
errors = Console(stderr=True)
INTERRUPTED = 130  # exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells use

DataArg = Annotated[Path, typer.Argument(help="Table file (CSV, TSV, Parquet, JSONL), or a folder of image or "
                                         "audio files (in class folders for training).", show_default=False)]
ModelArg = Annotated[Path, typer.Argument(help="Run folder, model folder, or models:/NAME@ALIAS.",
                                          show_default=False)]
Threads = Annotated[int | None, typer.Option(
    min=1, help="CPU threads (default: the CPUs this process may use; or $DEEPWELL_THREADS). Lower it when "
    "other work shares the machine.", show_default=False)]
TrackingUri = Annotated[str | None, typer.Option(
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else OUTPUT/mlflow.db beside the run folders).")]
StoreHome = Annotated[Path, typer.Option("--output", "-o", help="Folder of run folders whose mlflow.db is the "
                                         "default store.")]
class OutputFormat(str, Enum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


class Backend(str, Enum):  # config.ClusterConfig.backend, spelled for typer's choices
    local = "local"
    ray = "ray"


class PresetName(str, Enum):  # config.Preset, spelled for typer's choices
    FAST = "fast"
    BALANCED = "balanced"
    BEST = "best"


models_app = typer.Typer(help="The MLflow model registry: list versions, promote one to an alias.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    errors.print(f"[yellow]note:[/] {message}", highlight=False)


def run() -> None:
    """Entry point: the console script calls this, so every command shares one error handler."""
    prefer_passive_waiting()  # before torch is imported: idle OpenMP threads sleep instead of spinning
    remember_interrupts()  # a Ctrl-C that lands in a garbage-collection callback still stops training
    warnings.showwarning = _show_warning
    try:
        app()  # standalone: typer handles usage errors (exit 2) and Ctrl-C itself
    except DeepwellError as exc:
        errors.print(Panel(str(exc), title="[red]deepwell error[/]", title_align="left", expand=False),
                     highlight=False)
        sys.exit(2)


def _use_threads(threads: int | None) -> None:
    """--threads: for this process, as $DEEPWELL_THREADS would (a config's training.threads still wins)."""
    if threads is not None:
        os.environ["DEEPWELL_THREADS"] = str(threads)


@app.command()
def train(
    data: Annotated[Path | None, typer.Argument(help="Table file (CSV, TSV, Parquet, JSONL) or a folder of class "
                                                     "folders (not needed with --resume).",
                                                   show_default=False)] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column to predict.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for run folders.")] = Path("runs"),
    name: Annotated[str | None, typer.Option(help="Run folder name (default: data name + time).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    preset: Annotated[PresetName | None, typer.Option(
        help="fast: one network; balanced (default): an ensemble where the data is small enough; best: larger "
        "ensembles, slower.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    track: Annotated[bool | None, typer.Option("--track/--no-track",
                                               help="Log the run to MLflow (default: on unless DEEPWELL_TRACK=0).",
                                               show_default=False)] = None,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: deepwell).")] = None,
    register: Annotated[str | None, typer.Option(help="Register the model under this name.")] = None,
    auto_capacity: Annotated[bool, typer.Option(
        "--auto-capacity", help="Train, diagnose, apply the prescribed capacity change, retrain; keep the best.")]
    = False,
    rounds: Annotated[int, typer.Option(help="--auto-capacity: at most this many runs.", min=1)] = 3,
    sensitive: Annotated[str | None, typer.Option(help="Audit the test split for bias by these column(s), "
                                                       "comma-separated (fairness.json).")] = None,
    mitigate: Annotated[str | None, typer.Option(
        help="Bias mitigation (needs --sensitive): reweigh (training weights), threshold (group thresholds fitted on "
             "validation) or reductions (fairlearn's ExponentiatedGradient; binary targets). The audit then shows "
             "every metric before and after.")] = None,
    exclude_sensitive: Annotated[bool, typer.Option(help="Keep the --sensitive columns out of the model's "
                                                         "inputs (still audited).")] = False,
    threads: Threads = None,
    backend: Annotated[Backend | None, typer.Option(
        help="local: this process; ray: Ray Train's workers under distributed data parallel (docs/ray.md).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="--backend ray: training processes (default 2).")] = None,
    address: Annotated[str | None, typer.Option(help="--backend ray: the cluster (HOST:6379, ray://HOST:10001, "
                                                     "auto); default $RAY_ADDRESS, else one started here.")] = None,
    gpus_per_worker: Annotated[float | None, typer.Option(min=0, help="--backend ray: GPUs per worker (NCCL).")]
    = None,
) -> None:
    """Train a network on DATA to predict --target; saves a run folder and prints the evaluation."""
    import deepwell
    from deepwell.cli import render
    from deepwell.runs.layout import RunFolder

    _use_threads(threads)
    if data is None and resume is None:
        raise typer.BadParameter("give a DATA file, or --resume RUN_DIR")
    if resume is None and target is None and config is None and not (data is not None and data.is_dir()):
        raise typer.BadParameter("give --target COLUMN (or a --config with a target)")
    if sensitive or mitigate or exclude_sensitive:
        config = _with_fairness(config, target, sensitive, mitigate, exclude_sensitive)
    cluster = _cluster_options(backend, workers, address, gpus_per_worker)
    common = {"output": output, "epochs": epochs, "seed": seed, "preset": preset and preset.value, "quiet": quiet,
              "track": track, **({"cluster": cluster} if cluster else {}),
              "tracking_uri": tracking_uri, "experiment": experiment, "register": register}
    if auto_capacity:
        if resume is not None:
            raise typer.BadParameter("--auto-capacity starts new runs; it cannot be combined with --resume")
        import pandas as pd

        model = deepwell.auto_capacity(data, target, config=config, rounds=rounds, name=name, **common)
        console.print(render.frame_table(pd.DataFrame(model.rounds).drop(columns=["applied"], errors="ignore"),
                                         "auto-capacity rounds (the kept run is below)"))
    else:
        model = deepwell.train(data, target, config=config, name=name, resume=resume, **common)
    metrics = model.metrics
    info = metrics.training
    if info.stop_reason == "interrupted":
        errors.print(f"[yellow]interrupted:[/] kept the best model so far (epoch {info.best_epoch}); "
                     f"continue with: deepwell train --resume {model.run_dir}")
    console.print(f"[bold]{model.task}[/] model for [bold]{model.target}[/]: {render.training_line(info)}")
    render.print_evaluation(console, metrics.held_out, model.task,
                            "test split" if metrics.test else "validation split")
    render.print_diagnosis(console, model.diagnosis)
    run = RunFolder(model.run_dir)
    if run.fairness.is_file():
        import json

        audit = json.loads(run.fairness.read_text(encoding="utf-8"))
        flagged = audit["model"]["flagged"]
        console.print(f"bias audit of the test split by {audit['model']['attribute']}: {len(flagged)} metric(s) "
                      f"flagged{': ' + ', '.join(flagged) if flagged else ''} (figures in {run.fairness})")
        if audit.get("mitigation"):
            render.print_mitigation(console, audit["mitigation"])
    console.print(f"run folder: [bold]{run.path}[/] (report: {run.report})")
    tracking = run.read_info().get("tracking")
    if tracking:
        registered = (f"; registered as {tracking['registered_model']} version {tracking['model_version']}"
                      if tracking.get("model_version") else "")
        console.print(f"MLflow run {tracking['run_id']} at {tracking['uri']}{registered}")
    if info.stop_reason == "interrupted":
        raise typer.Exit(INTERRUPTED)  # the shell's convention for Ctrl-C, so scripts can tell


def _cluster_options(backend: Backend | None, workers: int | None, address: str | None,
                     gpus_per_worker: float | None) -> dict[str, object] | None:
    """--backend and its options as `cluster` settings; None when none is given (the config's own apply)."""
    given = {"backend": backend and backend.value, "workers": workers, "address": address,
             "gpus_per_worker": gpus_per_worker}
    given = {k: v for k, v in given.items() if v is not None}
    if set(given) - {"backend"} and given.get("backend") != "ray":
        raise typer.BadParameter("--workers, --address and --gpus-per-worker go with --backend ray")
    return given or None


def _column_list(text: str | None) -> list[str]:
    """`--sensitive sex,race` → ["sex", "race"]."""
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def _with_fairness(config: Path | None, target: str | None, sensitive: str | None, mitigate: str | None,
                   exclude: bool):
    """The config (a YAML file's or a new one) with the command line's fairness options set."""
    from deepwell.pipeline.prepare import load_config

    resolved = load_config(config, target)
    changes = {"sensitive": _column_list(sensitive) or
               resolved.fairness.sensitive, "exclude_sensitive": exclude or resolved.fairness.exclude_sensitive}
    if mitigate:
        changes["mitigate"] = mitigate
    return type(resolved).validate_dict({**resolved.model_dump(mode="json"),
                                         "fairness": {**resolved.fairness.model_dump(mode="json"), **changes}})


@app.command()
def predict(
    model: ModelArg, data: DataArg,
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Output table (default: CSV to stdout).")]
    = None,
) -> None:
    """Add prediction (and class probability) columns to DATA."""
    import deepwell
    from deepwell.data.io import write_table

    table = deepwell.load(model).predict_table(data)
    if out is None:
        table.to_csv(sys.stdout, index=False)
    else:
        write_table(table, out)
        errors.print(f"wrote {len(table)} predictions to {out}")


class ExportFormat(str, Enum):
    ONNX = "onnx"


class Quantization(str, Enum):  # export.folder.Quantize, spelled for typer's choices
    NONE = "none"
    INT8 = "int8"


@app.command()
def export(
    model: ModelArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (replaced whole when the export "
                                         "succeeds).", show_default=False)],
    format: Annotated[ExportFormat, typer.Option(help="onnx: one graph with a dynamic batch axis.")] \
    = ExportFormat.ONNX,
    quantize: Annotated[Quantization, typer.Option(help="int8: dynamic for linear, embedding and recurrent layers; "
                                                   "static (calibrated) where the network has convolutions.")]
    = Quantization.NONE,
    data: Annotated[Path | None, typer.Option(help="Held-out rows to check the export on (default: the run's test "
                                              "predictions).")] = None,
    calibration: Annotated[Path | None, typer.Option(help="Training rows that static int8 is calibrated on "
                                                     "(default: the run's data file).")] = None,
    min_agreement: Annotated[float, typer.Option(min=0.0, max=1.0, help="int8 is refused when fewer held-out "
                                                 "predictions than this share equal fp32's.")] = 0.99,
) -> None:
    """Write MODEL as a folder that runs with numpy and onnxruntime alone (deepwell.edge, deepwell-edge)."""
    import deepwell
    from deepwell.cli.render import print_export
    from deepwell.export.folder import export as export_folder

    report = export_folder(deepwell.load(model), output, data=data, calibration=calibration, quantize=quantize.value,
                           min_agreement=min_agreement)
    print_export(console, report)


class FinetuneMethod(str, Enum):  # config.FineTune without frozen, spelled for typer's choices
    LORA = "lora"
    PROMPT = "prompt"
    FULL = "full"


@app.command()
def finetune(
    base: Annotated[Path, typer.Argument(help="A causal language model's Hugging Face folder on disk (safetensors "
                                         "weights).", show_default=False)],
    data: Annotated[Path, typer.Argument(help="JSONL of {\"prompt\", \"completion\"} or {\"messages\"} lines, "
                                         "or an InstructLab taxonomy folder (qna.yaml files).", show_default=False)],
    method: Annotated[FinetuneMethod, typer.Option(help="lora: low-rank adapters; prompt: learned virtual tokens; "
                                                   "full: every weight.")] = FinetuneMethod.LORA,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for run folders.")] = Path("runs"),
    name: Annotated[str | None, typer.Option(help="Run folder name (default: data name + time).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML of fine-tuning settings (FinetuneConfig).")] = None,
    documents: Annotated[Path | None, typer.Option(help="Local folder with the knowledge documents a taxonomy's "
                                                   "qna.yaml files name (nothing is downloaded).")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Most epochs (default 3).")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Default by method: 2e-4 lora, 3e-2 prompt, 2e-5 "
                                                        "full.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split, shuffling and initialisation.")] = None,
    merge: Annotated[bool, typer.Option("--merge", help="Also write RUN/merged: the LoRA adapter folded into a "
                                        "plain model folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not log the run to MLflow.")] = False,
    tracking_uri: TrackingUri = None,
    threads: Threads = None,
) -> None:
    """Fine-tune a causal language model on prompt → completion pairs; evaluate it before and after."""
    import deepwell

    _use_threads(threads)
    generator = deepwell.finetune(base, data, method=method.value, config=config, output=output, name=name,
                                  documents=documents, epochs=epochs, learning_rate=learning_rate, seed=seed,
                                  merge=merge, quiet=quiet, track=False if no_track else None,
                                  tracking_uri=tracking_uri)
    import json

    run_dir = generator.path.parent
    metrics = json.loads((run_dir / "metrics.json").read_text())
    from deepwell.cli.render import print_finetune

    print_finetune(console, run_dir, metrics)


@app.command()
def generate(
    model: Annotated[Path, typer.Argument(help="A generator folder or a fine-tuning run folder.",
                                          show_default=False)],
    prompt: Annotated[str, typer.Argument(help="The text to continue.", show_default=False)],
    max_tokens: Annotated[int | None, typer.Option(min=1, help="New tokens at most (default: the model's, "
                                                   "128).")] = None,
    temperature: Annotated[float | None, typer.Option(min=0, help="0: greedy.")] = None,
    top_p: Annotated[float | None, typer.Option(min=0, max=1, help="Nucleus sampling threshold.")] = None,
    seed: Annotated[int | None, typer.Option(help="The same seed gives the same text.")] = None,
    chat: Annotated[bool, typer.Option("--chat", help="Send PROMPT as a user message through the chat "
                                       "template.")] = False,
    threads: Threads = None,
) -> None:
    """Continue PROMPT with a fine-tuned causal language model, printing the text as it comes."""
    import deepwell
    from deepwell.generation.model import Generator

    _use_threads(threads)
    generator = deepwell.load(model)
    if not isinstance(generator, Generator):
        raise typer.BadParameter(f"{model} is a table model; generate needs a fine-tuned causal LM "
                                 "(deepwell finetune).", param_hint="MODEL")
    messages = [{"role": "user", "content": prompt}] if chat else None
    for piece in generator.stream(None if chat else prompt, messages=messages, max_tokens=max_tokens,
                                  temperature=temperature, top_p=top_p, seed=seed):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def _is_generator(model: Path) -> bool:
    from deepwell.generation.model import is_generator  # imports torch: never for an export

    return is_generator(model)


@app.command()
def serve(
    model: ModelArg,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default: $PORT, else 8080).")] = None,
    name: Annotated[str, typer.Option(help="The model's name in /v2/models/NAME.")] = "model",
    token: Annotated[str | None, typer.Option(help="Require 'Authorization: Bearer TOKEN' (health routes "
                                                   "stay open); default: $DEEPWELL_TOKEN.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for predictions (default: the CPUs this "
                                                     "process may use).")] = None,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes.")] = 32 * 2**20,
    max_rows: Annotated[int, typer.Option(help="Most rows per request.")] = 10_000,
    max_explain_rows: Annotated[int, typer.Option(help="Most rows per explain request (each costs ~32 forward "
                                                       "passes).")] = 100,
    timeout: Annotated[float, typer.Option(help="Seconds a prediction may take before a 503.")] = 30.0,
    max_batch: Annotated[int, typer.Option(help="Micro-batching: most rows of concurrent requests predicted "
                                                "together.")] = 256,
    batch_wait: Annotated[float, typer.Option(help="Seconds a batch's first request waits for others (0: "
                                                   "only requests already queued join).")] = 0.0,
    workers: Annotated[int, typer.Option(min=1, help="Server processes; each gets an equal share of the "
                                                     "CPUs.")] = 1,
    log: Annotated[Path | None, typer.Option(help="The request log (SQLite; default: beside the model, "
                                                  "where `deepwell monitor` looks).")] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Keep no request log.")] = False,
    log_max_mb: Annotated[float, typer.Option(help="The request log's size cap; the oldest rows go "
                                                   "first.")] = 100.0,
    drift_every: Annotated[float, typer.Option(help="Seconds between refreshes of the /metrics drift "
                                                    "gauges.")] = 60.0,
    max_tokens: Annotated[int, typer.Option(help="A generator: most new tokens a request may ask for.")] = 512,
    concurrency: Annotated[int, typer.Option(min=1, help="A generator: generations running at once (others wait "
                                             "their turn, then get 429).")] = 2,
    backend: Annotated[Backend, typer.Option(help="local: uvicorn here; ray: a Ray Serve deployment of the same "
                                                  "app (docs/ray.md).")] = Backend.local,
    replicas: Annotated[int, typer.Option(min=1, help="--backend ray: copies of the app Ray Serve spreads "
                                                      "requests over.")] = 1,
    address: Annotated[str | None, typer.Option(help="--backend ray: the cluster (default $RAY_ADDRESS, else one "
                                                     "started here).")] = None,
) -> None:
    """Serve MODEL over the Open Inference Protocol (KServe V2 REST; `/v2/models/NAME/explain` beside infer),
    /predict and /invocations; log requests and watch for drift. A folder `deepwell export` wrote is served by the
    edge runtime, without torch. A fine-tuned causal LM is served over the protocol's generate extension and
    OpenAI-compatible /v1/completions and /v1/chat/completions."""
    import uvicorn

    from deepwell.edge.model import is_export

    if not is_export(model) and _is_generator(model):
        if backend is Backend.ray:
            raise typer.BadParameter("a generator is served by uvicorn here; --backend ray serves tabular models")
        import deepwell
        from deepwell.runtime import use_threads
        from deepwell.serving.app import Limits
        from deepwell.serving.generation import GenerationLimits, create_generation_app

        use_threads(threads)
        limits = Limits(max_body_bytes=max_body, token=token or os.environ.get("DEEPWELL_TOKEN") or None)
        app = create_generation_app(deepwell.load(model), name, limits,
                                    GenerationLimits(max_tokens=max_tokens, concurrency=concurrency,
                                                     timeout_s=timeout))
        port = port or int(os.environ.get("PORT", "8080"))
        errors.print(f"serving generator {model} as {name!r} on http://{host}:{port} (/v2/models/{name}/generate, "
                     f"/v1/completions, /v1/chat/completions)")
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return

    from deepwell.runtime import available_cpus
    from deepwell.serving.app import Limits, app_from_environment, settings_to_environment
    from deepwell.serving.recorder import Monitoring
    from deepwell.serving.request_log import default_log_path

    limits = Limits(max_body_bytes=max_body, max_rows=max_rows, timeout_s=timeout,
                    token=token or os.environ.get("DEEPWELL_TOKEN") or None, batch_rows=max_batch,
                    batch_wait_s=batch_wait, max_explain_rows=max_explain_rows)
    log_path = None if no_log else (log or default_log_path(str(model), name))
    monitoring = Monitoring(log=log_path, log_max_bytes=int(log_max_mb * 2**20), refresh_s=drift_every)
    port = port or int(os.environ.get("PORT", "8080"))
    if backend is Backend.ray:
        from deepwell.distributed.serve import serve_on_ray
        from deepwell.serving.app import serve_settings

        threads = threads or max(1, available_cpus() // replicas)
        serve_on_ray(serve_settings(str(Path(model).resolve()), name, limits, monitoring, threads), host=host,
                     port=port, replicas=replicas, address=address, announce=errors.print)
        return
    threads = threads or max(1, available_cpus() // workers)  # workers × threads never exceed the CPUs
    settings_to_environment(str(model), name, limits, monitoring, threads)
    errors.print(f"serving {model} as {name!r} on http://{host}:{port} (Open Inference Protocol: /v2/models/"
                 f"{name}; {workers} worker(s) × {threads} thread(s); request log: {log_path or 'off'})")
    if workers == 1:
        uvicorn.run(app_from_environment(), host=host, port=port, log_level="warning")
    else:
        uvicorn.run("deepwell.serving.app:app_from_environment", factory=True, workers=workers, host=host,
                    port=port, log_level="warning")


@app.command()
def monitor(
    model: ModelArg,
    data: Annotated[Path | None, typer.Option(help="A table of new rows (CSV, Parquet, JSONL) to compare with "
                                                   "training.")] = None,
    log: Annotated[Path | None, typer.Option(help="A server's request log (default: the one `deepwell serve` "
                                                  "writes beside MODEL).")] = None,
    name: Annotated[str, typer.Option(help="The served model's name (it names the log of a registry "
                                           "model).")] = "model",
    last: Annotated[int | None, typer.Option(min=1, help="Only the latest N logged rows.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for drift.html and drift.json.")] = Path("drift"),
    fail_on_drift: Annotated[bool, typer.Option(help="Exit with status 1 when a measure is flagged (for "
                                                     "schedulers and CI).")] = False,
) -> None:
    """Drift of MODEL's inputs and predictions against training: PSI and the KS test for numbers, PSI and
    chi-square for categories, text lengths and vocabulary, image and audio summaries."""
    import deepwell
    from deepwell.cli import render
    from deepwell.monitoring.monitor import drift_of_log, drift_of_table
    from deepwell.monitoring.report import write_drift_report
    from deepwell.serving.request_log import default_log_path

    if data is not None and log is not None:
        raise DeepwellError("Pass --data FILE or --log PATH, not both.")
    loaded = deepwell.load(model)
    if data is not None:
        report = drift_of_table(loaded, data)
    else:
        report = drift_of_log(loaded, log or default_log_path(str(model), name), last)
    console.print(render.drift_table(report))
    page = write_drift_report(report, out, str(model))
    console.print(f"{len(report.flagged)} of {len(report.measures)} measures flagged; report: {page}")
    if fail_on_drift and report.flagged:
        raise typer.Exit(1)


@app.command()
def audit(
    model: ModelArg,
    data: DataArg,
    sensitive: Annotated[str, typer.Option(help="Sensitive column(s), comma-separated; several are audited as "
                                                "intersectional groups.")],
    favourable: Annotated[str | None, typer.Option(help="The favourable outcome (default: the positive class, or "
                                                        "the last class).")] = None,
    privileged: Annotated[str | None, typer.Option(help="The privileged group (default: the largest).")] = None,
    population: Annotated[list[str] | None, typer.Option(help="A group's share of the population, "
                                                               "COLUMN=GROUP:SHARE (repeatable).")] = None,
    out: Annotated[Path, typer.Option(help="Where fairness.json goes.")] = Path("fairness.json"),
) -> None:
    """Bias audit of MODEL on labelled DATA: groups, base rates and missing values in the data; per-group rates
    and fairness metrics (SPD, DIR, EOD, AOD with 95% intervals; fairlearn's differences) for the model."""
    import deepwell
    from deepwell.cli import render
    from deepwell.fairness.run import audit_model, parse_population
    from deepwell.runs.files import write_json

    result = audit_model(deepwell.load(model), data, _column_list(sensitive), favourable=favourable,
                         privileged=privileged, population=parse_population(population or []))
    render.print_audit(console, result)
    write_json(out, result.to_dict())
    console.print(f"{len(result.model.flagged)} metric(s) flagged; figures in {out}")


@app.command()
def explain(
    model: ModelArg,
    data: DataArg,
    rows: Annotated[str | None, typer.Option(help="Rows to explain (positions from 0): 0,5,10-19. Default: all, "
                                                  "at most 1,000.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for explanations.csv, importance.csv and .png, tokens.json, "
                                           "saliency/.")] = Path("explanations"),
    importance: Annotated[bool, typer.Option(help="Permutation importance per column (needs the target in "
                                                  "DATA; on by default when it is there).")] = True,
    steps: Annotated[int, typer.Option(help="Integrated Gradients steps on the path from the baseline.",
                                       min=4, max=512)] = 32,
) -> None:
    """Explain MODEL's predictions on DATA: each input column's Integrated Gradients attribution per row (from a
    stated baseline) with the top reasons in words, saliency maps for image and audio columns, and permutation
    importance per column with 95% intervals when DATA has the target."""
    import deepwell
    from deepwell.cli import render
    from deepwell.explain.run import explain_model, parse_rows

    result = explain_model(deepwell.load(model), data, parse_rows(rows), steps=steps,
                           importance=None if importance else False)
    render.print_explanation(console, result)
    folder = result.save(out)
    console.print(f"explanations of {len(result.rows)} row(s) in {folder / 'explanations.csv'}"
                  + (f"; importance in {folder / 'importance.csv'}" if result.importance is not None else ""))


@app.command()
def evaluate(
    model: ModelArg,
    data: DataArg,
    sensitive: Annotated[str | None, typer.Option(help="Also audit for bias by these column(s), comma-separated "
                                                       "(as `deepwell audit` with its defaults).")] = None,
) -> None:
    """Evaluate a saved model on labelled DATA, beside the trivial baseline (and audit it with --sensitive)."""
    import deepwell
    from deepwell.cli import render

    loaded = deepwell.load(model)
    render.print_evaluation(console, loaded.evaluate(data), loaded.task, str(data))
    if sensitive:
        from deepwell.fairness.run import audit_model

        render.print_audit(console, audit_model(loaded, data, _column_list(sensitive)))


@app.command()
def describe(
    data: DataArg,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Mark the target column.")] = None,
) -> None:
    """Show each column's inferred type, missing values and distinct values (a folder: its files and classes)."""
    from deepwell.cli import render
    from deepwell.data.folders import folder_table
    from deepwell.data.inference import profile_table
    from deepwell.data.io import read_table

    frame = folder_table(data)[0] if data.is_dir() else read_table(data)
    console.print(render.profile_table(profile_table(frame, target), f"{data}: {len(frame)} rows"))


@app.command("init-config")
def init_config(
    data: DataArg,
    target: Annotated[str, typer.Option("--target", "-t", help="Column to predict.")],
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
) -> None:
    """Write the inferred configuration as YAML, to edit and pass back with --config."""
    from deepwell.data.io import read_table
    from deepwell.pipeline.prepare import load_config, resolve_config
    from deepwell.runs.files import write_text

    frame = read_table(data)
    config = resolve_config(frame, load_config(None, target), str(data))
    text = f"# deepwell configuration inferred from {data}; edit and use with --config\n" + config.to_yaml()
    if out is None:
        sys.stdout.write(text)
    else:
        write_text(out, text)
        errors.print(f"wrote {out}")


@app.command()
def info(model: ModelArg) -> None:
    """Describe a saved model: task, inputs, architecture, size and (for a run folder) its metrics."""
    from rich.table import Table

    import deepwell
    from deepwell.cli import render

    loaded = deepwell.load(model)
    if isinstance(loaded, deepwell.Generator):
        info = loaded.info
        base = info.get("base", {})
        own = {"lora": "lora_", "prompt": "prompt_encoder", "full": ""}[info["method"]]  # the adapter's names
        learned = sum(p.numel() for n, p in loaded.model.named_parameters() if own in n)
        console.print(f"[bold]causal language model[/] ({info['method']} fine-tuning of a "
                      f"{info.get('base_model_type')} model), {learned:,} parameters of its own")
        if base:
            console.print(f"base: {base['name']} at {base['path']} (SHA-256 {base['sha256'][:16]}…)")
        console.print(f"generation defaults: {info.get('generation')}")
        return
    arch = loaded.network.architecture["model"]
    console.print(f"[bold]{loaded.task}[/] model predicting [bold]{loaded.target}[/] — "
                  f"{loaded.parameter_count:,} parameters, deepwell {loaded.meta.get('deepwell_version')}")
    if loaded.classes_:
        console.print(f"classes: {', '.join(map(str, loaded.classes_))}")
    members = loaded.network.architecture.get("members") or [arch]
    for number, member in enumerate(members, start=1):
        label = f"member {number} of {len(members)}" if len(members) > 1 else "network"
        console.print(f"{label}: {member['hidden_layers']} hidden layers × {member['hidden_width']} "
                      f"({member['activation']}, {member['normalization']} norm, dropout {member['dropout']}"
                      f"{', residual' if member['residual'] else ''}, numbers: {member['numeric_embedding']})")
    inputs = Table(title="inputs", title_justify="left")
    inputs.add_column("column")
    inputs.add_column("type")
    for feature in loaded.preprocessor.features:
        inputs.add_row(feature.name, feature.type)
    console.print(inputs)
    if loaded.metrics is not None and loaded.metrics.test is not None:
        render.print_evaluation(console, loaded.metrics.test, loaded.task, "test split (at training)")


@app.command()
def tune(
    data: DataArg,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column to predict.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config to start from.")] = None,
    trials: Annotated[int, typer.Option(help="Finished trials the study should hold.", min=1)] = 20,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    jobs: Annotated[int, typer.Option(help="Trials run at once (threads here; with --backend ray, trials spread "
                                           "over the cluster).", min=1)] = 1,
    storage: Annotated[str | None, typer.Option(
        help="Optuna database URL (default: SQLite in the study folder); share one to search from many "
             "machines.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default: tune-<data name>).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the study and runs.")] = Path("runs"),
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs per trial.", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (the same split for every trial).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    track: Annotated[bool | None, typer.Option("--track/--no-track", help="Track the winner's run in MLflow.",
                                               show_default=False)] = None,
    tracking_uri: TrackingUri = None,
    threads: Threads = None,
    backend: Annotated[Backend, typer.Option(help="local: Optuna here; ray: Ray Tune with the Optuna searcher and "
                                                  "ASHA early stopping over a Ray cluster.")] = Backend.local,
    address: Annotated[str | None, typer.Option(help="--backend ray: the cluster (default $RAY_ADDRESS, else one "
                                                     "started here).")] = None,
) -> None:
    """Search capacity and regularisation with Optuna (pruning, resumable); retrain the winner as a run."""
    import deepwell
    from deepwell.cli import render

    _use_threads(threads)
    if target is None and config is None and not data.is_dir():
        raise typer.BadParameter("give --target COLUMN (or a --config with a target)")
    result = deepwell.tune(data, target, config=config, trials=trials, timeout=timeout, jobs=jobs, storage=storage,
                           study_name=study, output=output, epochs=epochs, seed=seed, quiet=quiet, track=track,
                           tracking_uri=tracking_uri, backend=backend.value, address=address)
    console.print(render.frame_table(result.trials, f"trials ({result.folder / 'trials.csv'})"))
    console.print(f"best trial: validation {result.metric} {result.best_value:.4f} with "
                  + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in result.best_params.items()))
    model = result.model
    render.print_evaluation(console, model.metrics.held_out, model.task, "winner retrained, test split")
    console.print(f"winner run folder: [bold]{model.run_dir}[/]; plot: {result.folder / 'metric_vs_parameters.png'}")


@app.command()
def diagnose(
    data: Annotated[Path, typer.Argument(help="Table file, or a run folder to reuse its data and config.",
                                         show_default=False)],
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column to predict.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file.")] = None,
    fractions: Annotated[str, typer.Option(help="Shares of the training split, comma-separated.")]
    = "0.1,0.25,0.5,1",
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the runs.")] = Path("runs"),
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs per run.", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
) -> None:
    """Data-size learning curve: train on growing shares of the data; would more data or a larger model help?"""
    import pandas as pd

    import deepwell
    from deepwell.cli import render

    try:
        shares = tuple(float(f) for f in fractions.split(","))
    except ValueError:
        raise typer.BadParameter(f"--fractions must be numbers separated by commas, got {fractions!r}") from None
    if not shares or not all(0 < f <= 1 for f in shares):
        raise typer.BadParameter("--fractions must lie in (0, 1]")
    curve = deepwell.diagnose(data, target, config=config, fractions=shares, output=output, epochs=epochs,
                              seed=seed)
    console.print(render.frame_table(pd.DataFrame(curve.points).drop(columns=["fraction"]),
                                     f"data-size learning curve ({curve.error})"))
    console.print(f"[bold]{curve.conclusion}[/] — {curve.summary}", highlight=False)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run folder.", show_default=False)],
    open_page: Annotated[bool, typer.Option("--open", help="Open it in the web browser.")] = False,
) -> None:
    """Rebuild a run's report.html (data profile, curves, evaluation, predictions) from its files."""
    from deepwell.reports import build_report

    path = build_report(run_dir)
    console.print(f"wrote {path}")
    if open_page:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


Format = Annotated[OutputFormat, typer.Option("--format", "-f", help="table for people; csv or json for scripts.")]


def _store(tracking_uri: str | None, output: Path) -> str:
    from deepwell.tracking.tracker import TrackingOptions

    return TrackingOptions(uri=tracking_uri, home=output).resolved_uri()


def _show(frame, title: str, fmt: OutputFormat, empty: str) -> None:
    """A table of results: rich for people (ids never cut), CSV or JSON for scripts."""
    if fmt is OutputFormat.CSV:
        frame.to_csv(sys.stdout, index=False)
    elif fmt is OutputFormat.JSON:
        sys.stdout.write(frame.to_json(orient="records", indent=1) + "\n")
    elif frame.empty:
        console.print(empty)
    else:
        from deepwell.cli import render

        console.print(render.frame_table(frame, title))


@app.command()
def runs(
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment (default: deepwell).")] = None,
    tracking_uri: TrackingUri = None, output: StoreHome = Path("runs"), fmt: Format = OutputFormat.TABLE,
) -> None:
    """List tracked runs, newest first, with their key metrics."""
    from deepwell.tracking.runs import list_runs

    name = experiment or "deepwell"
    _show(list_runs(experiment, _store(tracking_uri, output)), f"runs in {name}", fmt, f"No runs in {name}.")


@app.command()
def compare(
    refs: Annotated[list[str], typer.Argument(help="Run folders or MLflow run ids (two or more).",
                                              show_default=False)],
    all_params: Annotated[bool, typer.Option("--all", help="Show settings that are equal too.")] = False,
    tracking_uri: TrackingUri = None, output: StoreHome = Path("runs"), fmt: Format = OutputFormat.TABLE,
) -> None:
    """Show runs side by side: the settings that differ and every final metric."""
    from deepwell.tracking.runs import compare as compare_runs

    uri = tracking_uri if all(Path(ref).is_dir() for ref in refs) else _store(tracking_uri, output)
    table = compare_runs(refs, uri, all_params).reset_index(names="")
    _show(table, "comparison", fmt, "Nothing to compare.")


@models_app.command("list")
def models_list(tracking_uri: TrackingUri = None, output: StoreHome = Path("runs"),
                fmt: Format = OutputFormat.TABLE) -> None:
    """Registered models, one row per version, with their aliases."""
    import pandas as pd

    from deepwell.tracking.registry import list_models

    uri = _store(tracking_uri, output)
    rows = list_models(uri)
    for row in rows:
        row["aliases"] = ", ".join(row["aliases"])
        row["created"] = pd.Timestamp(row["created"], unit="ms").strftime("%Y-%m-%d %H:%M")
    _show(pd.DataFrame(rows, columns=["name", "version", "aliases", "run_id", "created"]), "registered models", fmt,
          f"No registered models at {uri} (train with --register NAME to add one).")


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="Registered model name.", show_default=False)],
    model_version: Annotated[int, typer.Argument(metavar="VERSION", help="Version number.", show_default=False)],
    alias: Annotated[str, typer.Option(help="Alias to point at this version.")] = "production",
    tracking_uri: TrackingUri = None, output: StoreHome = Path("runs"),
) -> None:
    """Point an alias (default: production) at a version; load it with models:/NAME@ALIAS."""
    from deepwell.tracking.registry import promote

    promote(name, model_version, alias, _store(tracking_uri, output))
    console.print(f"{name} version {model_version} is now @{alias} (models:/{name}@{alias})")


@app.command()
def version() -> None:
    """Print deepwell's version."""
    console.print(__version__)


if __name__ == "__main__":
    run()
