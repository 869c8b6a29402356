"""The inference server: a FastAPI app around one model, speaking the Open Inference Protocol (KServe V2) over
REST, plus `/predict` (records) and `/invocations` (MLflow's scoring format), so standard clients work unchanged,
and a playground page at `/` (`playground.py`).

Every request goes through the one prediction path (`inference.predict`) with file columns taken as the files'
bytes, never as paths. Limits: body size, rows per request, time per request, and an optional bearer token
(health routes and the page stay open; the page asks for the token). `/metrics` for Prometheus (`metrics.py`).
A client's mistake is a 4xx `{"error": "…"}` naming the field. Each answered request is recorded off the
serving path (`recorder.py`: the request log, the drift gauges).

Imports FastAPI at module level (FastAPI reads the route functions' annotations); only `deepwell serve` and
the tests import this module.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from deepwell import __version__
from deepwell.errors import DeepwellError
from deepwell.serving.batching import Batcher
from deepwell.serving.exported import ExportedModel, served_model
from deepwell.serving.metrics import ServerMetrics
from deepwell.serving.playground import playground_page
from deepwell.serving.protocol import HEADER_LENGTH, ProtocolError, encode_response, parse_request
from deepwell.serving.recorder import Monitoring, Recorder
from deepwell.serving.schema import (
    columns_from_tensors,
    explanation_tensors,
    group_columns,
    input_columns,
    output_metadata,
    output_tensors,
    schema_description,
)

if TYPE_CHECKING:
    import pandas as pd

    from deepwell.model import Model

VERSION = "1"


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 32 * 2**20
    max_rows: int = 10_000
    timeout_s: float = 30.0
    token: str | None = None
    batch_rows: int = 256  # micro-batching: rows predicted together at most
    batch_wait_s: float = 0.0  # how long the first request of a batch waits for others (0: only those queued)
    max_explain_rows: int = 100  # an explanation costs ~32 forward passes per row


class ClientError(Exception):
    """A request the server refuses: its status and the message a client reads."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Predictor:
    """Checks each request's table, then predicts it with the requests that arrived meanwhile (`Batcher`) on one
    worker thread (torch's own threads do the parallel work)."""

    def __init__(self, model: Model | ExportedModel, limits: Limits, metrics: ServerMetrics,
                 recorder: Recorder) -> None:
        from deepwell.inference.predict import predict_frame

        self.model, self.limits, self.recorder = model, limits, recorder
        self.columns = input_columns(model)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepwell-predict")
        exported = isinstance(model, ExportedModel)
        self.batcher = Batcher(lambda frame: model.predict_frame(frame, "the request") if exported else
                               predict_frame(model, frame, "the request"), self.executor,
                               limits.batch_rows, limits.batch_wait_s, metrics.observe_batch)

    async def run(self, table: Received):
        from deepwell.inference.predict import with_file_contents

        started = time.perf_counter()
        frame = table.frame
        self.model.preprocessor.check_columns(frame, "the request")
        kept = self.model.input_columns + [c for c in group_columns(self.model) if c in frame.columns]
        frame = with_file_contents(self.model, frame)[kept]  # file bytes, never paths
        try:
            predictions = await asyncio.wait_for(self.batcher.submit(frame), self.limits.timeout_s)
        except TimeoutError:
            raise ClientError(503, f"the prediction took longer than {self.limits.timeout_s:g} s "
                                   "(the server's --timeout)") from None
        predictions.raise_for_errors()
        self.recorder.record(table.rows, frame, predictions, time.perf_counter() - started)
        return predictions

    async def explain(self, table: Received):
        """Integrated Gradients for the request's rows, on the predicting thread (one model user at a time)."""
        if isinstance(self.model, ExportedModel):
            raise ClientError(501, "explanations need the network itself: serve the trained model (its run or "
                                   "model folder) rather than its export")
        from deepwell.explain.run import explain_model
        from deepwell.inference.predict import with_file_contents

        if len(table.frame) > self.limits.max_explain_rows:
            raise ClientError(413, f"{len(table.frame)} rows to explain; at most {self.limits.max_explain_rows} per "
                                   "request")
        self.model.preprocessor.check_columns(table.frame, "the request")
        frame = with_file_contents(self.model, table.frame)[self.model.input_columns]
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self.executor, lambda: explain_model(self.model, frame, importance=False,
                                                                         maps=False))
        try:
            return await asyncio.wait_for(work, self.limits.timeout_s)
        except TimeoutError:
            raise ClientError(503, f"the explanation took longer than {self.limits.timeout_s:g} s "
                                   "(the server's --timeout)") from None


class Guard:
    """The token and body-size checks, and the request metrics, as one plain ASGI middleware (Starlette's
    `BaseHTTPMiddleware` cost a served row about 1.5 ms). Health routes and the page at `/` need no token."""

    def __init__(self, app, limits: Limits, metrics: ServerMetrics) -> None:
        self.app, self.limits, self.metrics = app, limits, metrics
        self.expected = f"Bearer {limits.token}".encode() if limits.token else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self.refusal(scope)
            await (refusal or self.app)(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            self.metrics.observe_request(route, status, time.perf_counter() - started)

    def refusal(self, scope) -> JSONResponse | None:
        headers = dict(scope["headers"])
        path = scope["path"]
        if self.expected and not (path.startswith("/v2/health") or path == "/"):
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):  # in constant time
                return JSONResponse({"error": "missing or wrong bearer token (Authorization: Bearer …)"},
                                    status_code=401)
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limits.max_body_bytes:
            return JSONResponse({"error": f"the body has {int(length)} bytes; at most {self.limits.max_body_bytes} "
                                          "(the server's --max-body)"}, status_code=413)
        return None


def create_app(model: Model | ExportedModel, name: str = "model", limits: Limits | None = None,
               monitoring: Monitoring | None = None) -> FastAPI:
    """The server's app; `monitoring` says where requests are logged (none by default) and how often the drift
    gauges refresh. The app's shutdown (SIGTERM under uvicorn) flushes the log."""
    limits = limits or Limits()
    metrics = ServerMetrics()
    recorder = Recorder(model, monitoring or Monitoring(), metrics)
    predictor = Predictor(model, limits, metrics, recorder)
    page = playground_page(name)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        await asyncio.to_thread(recorder.close)

    app = FastAPI(title=f"deepwell: {name}", version=__version__, lifespan=lifespan,
                  description=schema_description(model, predictor.columns, name))

    @app.exception_handler(ClientError)
    async def client_error(_: Request, exc: ClientError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    app.add_middleware(Guard, limits=limits, metrics=metrics)

    def check_model(model_name: str) -> None:
        if model_name != name:
            raise ClientError(404, f"unknown model {model_name!r}; this server serves {name!r}")

    @app.get("/", include_in_schema=False)
    async def playground() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        content, media = metrics.render()
        return Response(content, media_type=media)

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "deepwell", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/models/{model_name}")
    @app.get("/v2/models/{model_name}/versions/{model_version}")
    async def model_metadata(model_name: str, model_version: str = VERSION) -> dict[str, Any]:
        check_model(model_name)
        return {"name": name, "versions": [VERSION], "platform": f"deepwell-{__version__}",
                "inputs": [c.metadata() for c in predictor.columns], "outputs": output_metadata(model),
                "parameters": {"task": model.task.value, "target": model.target}}

    @app.get("/v2/models/{model_name}/ready")
    @app.get("/v2/models/{model_name}/versions/{model_version}/ready")
    async def model_ready(model_name: str, model_version: str = VERSION) -> dict[str, Any]:
        check_model(model_name)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{model_name}/infer")
    @app.post("/v2/models/{model_name}/versions/{model_version}/infer")
    async def infer(model_name: str, request: Request, model_version: str = VERSION) -> Response:
        check_model(model_name)
        parsed, table = await _v2_request(request, predictor, limits)
        predictions = await _predict(predictor, table, metrics)
        return _v2_response(name, parsed, output_tensors(model, predictions))

    @app.post("/v2/models/{model_name}/explain")
    @app.post("/v2/models/{model_name}/versions/{model_version}/explain")
    async def explain(model_name: str, request: Request, model_version: str = VERSION) -> Response:
        """The infer request's format; the outputs are each input column's Integrated Gradients attribution
        (`attributions` [rows, columns], named by `columns`), the output explained, its value and the baseline's,
        the prediction and the top reasons in words."""
        check_model(model_name)
        parsed, table = await _v2_request(request, predictor, limits)
        try:
            found = await predictor.explain(table)
        except DeepwellError as exc:
            raise ClientError(400, str(exc)) from None
        return _v2_response(name, parsed, explanation_tensors(found))

    @app.post("/predict")
    async def predict_records(request: Request) -> dict[str, Any]:
        """`{"records": [{column: value, …}, …]}` → `{"predictions": […], "probabilities": […]}`."""
        message = _json(await _body(request, limits))
        records = message.get("records") if isinstance(message, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records) or not records:
            raise ClientError(400, 'the body must be {"records": [{column: value, …}, …]} with at least one record')
        predictions = await _predict(predictor, _records_frame(records, limits), metrics)
        return _plain(model, predictions)

    @app.post("/invocations")
    async def invocations(request: Request) -> dict[str, Any]:
        """MLflow's scoring format: `{"dataframe_split": {"columns": […], "data": [[…]]}}` or
        `{"dataframe_records": […]}` → `{"predictions": […]}`."""
        message = _json(await _body(request, limits))
        predictions = await _predict(predictor, _mlflow_frame(message, limits), metrics)
        return {"predictions": _plain(model, predictions)["predictions"]}

    return app


SETTINGS_VARIABLE = "DEEPWELL_SERVE_SETTINGS"  # how `deepwell serve --workers N` hands its settings to workers


def serve_settings(model: str, name: str, limits: Limits, monitoring: Monitoring, threads: int) -> dict[str, Any]:
    from dataclasses import asdict

    return {"model": model, "name": name, "limits": asdict(limits), "threads": threads,
            "monitoring": {**asdict(monitoring), "log": str(monitoring.log) if monitoring.log else None}}


def settings_to_environment(model: str, name: str, limits: Limits, monitoring: Monitoring, threads: int) -> None:
    os.environ[SETTINGS_VARIABLE] = json.dumps(serve_settings(model, name, limits, monitoring, threads))


def app_from_environment() -> FastAPI:
    """The app factory each uvicorn worker process calls (`deepwell serve --workers N`); an export is served by
    the edge runtime, without torch."""
    return app_from_settings(json.loads(os.environ[SETTINGS_VARIABLE]))


def app_from_settings(settings: dict[str, Any]) -> FastAPI:
    """The app from `deepwell serve`'s settings (JSON): what a uvicorn worker or a Ray Serve replica builds."""
    settings = json.loads(json.dumps(settings))
    monitoring = settings["monitoring"]
    monitoring["log"] = Path(monitoring["log"]) if monitoring["log"] else None
    app = create_app(served_model(settings["model"], settings["threads"]), settings["name"],
                     Limits(**settings["limits"]), Monitoring(**monitoring))
    gc.collect()
    gc.freeze()  # the model and libraries loaded so far are never collected again: full collections of them
    return app  # were pauses of a quarter second (p99 at concurrency 8: 264 → 50 ms)


async def _body(request: Request, limits: Limits) -> bytes:
    body = await request.body()
    if len(body) > limits.max_body_bytes:
        raise ClientError(413, f"the body has {len(body)} bytes; at most {limits.max_body_bytes} (--max-body)")
    return body


async def _v2_request(request: Request, predictor: Predictor, limits: Limits):
    """(the parsed Open Inference Protocol request, its table): what infer and explain read."""
    body = await _body(request, limits)
    try:
        parsed = parse_request(body, request.headers.get(HEADER_LENGTH))
        return parsed, Received.of_columns(columns_from_tensors(predictor.columns, parsed.inputs, limits.max_rows))
    except ProtocolError as exc:
        raise ClientError(400, str(exc)) from None


def _v2_response(name: str, parsed, outputs: dict[str, tuple[str, Any]]) -> Response:
    """The outputs the request asked for (all by default), JSON or with the binary extension."""
    if parsed.outputs is not None:
        missing = [o for o in parsed.outputs if o not in outputs]
        if missing:
            raise ClientError(400, f"unknown output(s) {missing}; the model gives {list(outputs)}")
        outputs = {o: outputs[o] for o in parsed.outputs}
    content, header = encode_response(name, parsed, outputs, VERSION)
    headers = {HEADER_LENGTH: str(header)} if header is not None else None
    media = "application/octet-stream" if header is not None else "application/json"
    return Response(content, media_type=media, headers=headers)


async def _predict(predictor: Predictor, table: Received, metrics: ServerMetrics):
    try:
        predictions = await predictor.run(table)
    except DeepwellError as exc:
        raise ClientError(400, str(exc)) from None
    regression = predictor.model.task.is_regression
    metrics.observe_predictions(None if regression else list(predictions.predictions), len(table.rows))
    return predictions


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClientError(400, f"the request body is not valid JSON: {exc}") from None


@dataclass
class Received:
    """A request's rows as a table for the prediction path, and as the dicts it sent for the request log (built
    here, where they are cheap: converting a one-row table back costs more than predicting it)."""

    frame: pd.DataFrame
    rows: list[dict[str, Any]]

    @classmethod
    def of_records(cls, records: list[dict[str, Any]]) -> Received:
        import pandas as pd

        return cls(pd.DataFrame.from_records(records), records)

    @classmethod
    def of_columns(cls, columns: dict[str, list[Any]]) -> Received:
        import pandas as pd

        names = list(columns)
        rows = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        return cls(pd.DataFrame(columns), rows)


def _records_frame(records: list[dict[str, Any]], limits: Limits) -> Received:
    if len(records) > limits.max_rows:
        raise ClientError(413, f"{len(records)} records; at most {limits.max_rows} per request (--max-rows)")
    return Received.of_records(records)


def _mlflow_frame(message: Any, limits: Limits) -> Received:
    import pandas as pd

    if isinstance(message, dict) and isinstance(message.get("dataframe_records"), list):
        return _records_frame(message["dataframe_records"], limits)
    split = message.get("dataframe_split") if isinstance(message, dict) else None
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
            or not isinstance(split.get("data"), list):
        raise ClientError(400, 'the body must hold "dataframe_split" ({"columns": […], "data": [[…], …]}) or '
                               '"dataframe_records" ([{column: value, …}, …])')
    if len(split["data"]) > limits.max_rows:
        raise ClientError(413, f"{len(split['data'])} rows; at most {limits.max_rows} per request (--max-rows)")
    try:
        frame = pd.DataFrame(split["data"], columns=split["columns"])
    except ValueError as exc:
        raise ClientError(400, f"dataframe_split: {exc}") from None
    return Received(frame, [dict(zip(split["columns"], row, strict=False)) for row in split["data"]])


def _plain(model: Model, predictions) -> dict[str, Any]:
    import numpy as np

    values = [v.item() if isinstance(v, np.generic) else v for v in predictions.predictions]
    if model.task.is_regression:
        return {"predictions": values}
    classes = [str(c) for c in model.classes_]
    return {"predictions": values,
            "probabilities": [dict(zip(classes, map(float, row), strict=True)) for row in predictions.outputs]}
