"""`deepwell serve` on a generator folder: a causal LM over the Open Inference Protocol's generate extension and
OpenAI-compatible routes.

- `POST /v2/models/NAME/generate` `{"text_input": "...", "parameters": {"max_tokens", "temperature", "top_p",
  "seed"}}` → `{"model_name", "text_output"}`; `/generate_stream` answers the same fields as server-sent events,
  one per piece of text (KServe / Triton's generate extension).
- `POST /v1/completions` and `/v1/chat/completions` (with `"stream": true`: server-sent events ending in
  `data: [DONE]`), `GET /v1/models`: what the `openai` client calls.
- Limits: `max_tokens` per request (a request asking more is refused with 400), requests generating at once
  (`concurrency`; more wait their turn up to `queue_s`, then 429), seconds per generation (`timeout_s`: the text
  so far is returned with finish_reason `length`), body size and the bearer token (serving/app.Guard).
Generation runs on worker threads, never on the event loop; a client that disconnects stops its generation.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deepwell import __version__
from deepwell.errors import DeepwellError
from deepwell.generation.model import Generator, Usage
from deepwell.serving.app import ClientError, Guard, Limits
from deepwell.serving.metrics import ServerMetrics

DONE = "data: [DONE]\n\n"


@dataclass
class GenerationLimits:
    max_tokens: int = 512  # new tokens a request may ask for
    concurrency: int = 2  # generations running at once
    queue_s: float = 30.0  # how long a request waits for its turn before a 429
    timeout_s: float = 120.0  # seconds one generation may run; the text so far is returned


class Sampling(BaseModel):
    """Sampling settings every route reads (absent: the generator's defaults)."""

    model_config = ConfigDict(extra="ignore")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=5)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None


class GenerateRequest(BaseModel):
    """The Open Inference Protocol generate extension's request."""

    model_config = ConfigDict(extra="ignore")
    text_input: str
    parameters: Sampling = Field(default_factory=Sampling)


class CompletionRequest(Sampling):
    model: str | None = None
    prompt: str | list[str]
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for completions


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(Sampling):
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    max_completion_tokens: int | None = Field(None, ge=1)


class Scheduler:
    """Runs generations on `concurrency` threads; a request waits at most `queue_s` for one."""

    def __init__(self, generator: Generator, limits: GenerationLimits) -> None:
        self.generator, self.limits = generator, limits
        self.slots = asyncio.Semaphore(limits.concurrency)
        self.executor = ThreadPoolExecutor(max_workers=limits.concurrency, thread_name_prefix="deepwell-generate")

    def settings(self, sampling: Sampling, max_tokens: int | None) -> dict[str, Any]:
        wanted = max_tokens if max_tokens is not None else sampling.max_tokens
        if wanted is not None and wanted > self.limits.max_tokens:
            raise ClientError(400, f"max_tokens {wanted} is above this server's limit of {self.limits.max_tokens} "
                                   "(deepwell serve --max-tokens)")
        return {"max_tokens": wanted, "temperature": sampling.temperature, "top_p": sampling.top_p,
                "seed": sampling.seed}

    async def stream(self, request: Request, text: str | None, messages: list[dict[str, str]] | None,
                     settings: dict[str, Any], usage: Usage) -> AsyncIterator[str]:
        """Pieces of text as the worker thread makes them; stops the thread on a timeout or a disconnect."""
        try:
            await asyncio.wait_for(self.slots.acquire(), self.limits.queue_s)
        except TimeoutError:
            raise ClientError(429, f"the server is busy ({self.limits.concurrency} generations at once, waited "
                                   f"{self.limits.queue_s:g} s); try again") from None
        loop, queue, stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
        deadline = time.monotonic() + self.limits.timeout_s

        def work() -> None:
            try:
                for piece in self.generator.stream(text, messages=messages, stop=stop, usage=usage, **settings):
                    loop.call_soon_threadsafe(queue.put_nowait, piece)
                    if time.monotonic() > deadline:
                        stop.set()
            except BaseException as exc:  # handed to the request, which reports it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        future = loop.run_in_executor(self.executor, work)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise ClientError(400, str(item)) if isinstance(item, DeepwellError) else item
                if await request.is_disconnected():
                    break
                yield item
        finally:
            stop.set()
            await future
            self.slots.release()

    async def complete(self, request: Request, text: str | None, messages: list[dict[str, str]] | None,
                       settings: dict[str, Any]) -> tuple[str, Usage]:
        usage = Usage()
        pieces = [piece async for piece in self.stream(request, text, messages, settings, usage)]
        return "".join(pieces), usage


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _parsed(request: Request, kind: type[BaseModel]) -> Any:
    try:
        return kind.model_validate_json(await request.body())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise ClientError(400, f"invalid {kind.__name__}: {problems}") from None


def create_generation_app(generator: Generator, name: str = "model", limits: Limits | None = None,
                          generation: GenerationLimits | None = None) -> FastAPI:
    limits, generation = limits or Limits(), generation or GenerationLimits()
    metrics = ServerMetrics()
    scheduler = Scheduler(generator, generation)
    app = FastAPI(title=f"deepwell: {name}", version=__version__,
                  description=f"Causal language model {name!r} ({generator.method.value} fine-tuning).")
    app.add_middleware(Guard, limits=limits, metrics=metrics)

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError) -> JSONResponse:
        if request.url.path.startswith("/v1/"):  # OpenAI's error shape, which its client reads
            kind = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error"}.get(exc.status)
            return JSONResponse({"error": {"message": exc.message, "type": kind or "server_error", "param": None,
                                           "code": None}}, status_code=exc.status)
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    def check(model_name: str | None) -> None:
        if model_name is not None and model_name != name:
            raise ClientError(404, f"unknown model {model_name!r}; this server serves {name!r}")

    @app.get("/v2/health/live")
    @app.get("/v2/health/ready")
    async def health() -> dict[str, bool]:
        return {"live": True, "ready": True}

    @app.get("/v2")
    async def server() -> dict[str, Any]:
        return {"name": "deepwell", "version": __version__, "extensions": ["generate"]}

    @app.get("/v2/models/{model_name}")
    async def metadata(model_name: str) -> dict[str, Any]:
        check(model_name)
        return {"name": name, "versions": ["1"], "platform": "deepwell-generator",
                "inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1]}],
                "outputs": [{"name": "text_output", "datatype": "BYTES", "shape": [1]}]}

    @app.get("/v2/models/{model_name}/ready")
    async def ready(model_name: str) -> dict[str, Any]:
        check(model_name)
        return {"name": name, "ready": True}

    @app.post("/v2/models/{model_name}/generate")
    async def generate(model_name: str, request: Request) -> dict[str, Any]:
        check(model_name)
        body = await _parsed(request, GenerateRequest)
        text, _ = await scheduler.complete(request, body.text_input, None, scheduler.settings(body.parameters, None))
        return {"model_name": name, "model_version": "1", "text_output": text}

    @app.post("/v2/models/{model_name}/generate_stream")
    async def generate_stream(model_name: str, request: Request) -> StreamingResponse:
        check(model_name)
        body = await _parsed(request, GenerateRequest)
        pieces = scheduler.stream(request, body.text_input, None, scheduler.settings(body.parameters, None), Usage())

        async def events() -> AsyncIterator[str]:
            async for piece in pieces:
                yield _sse({"model_name": name, "model_version": "1", "text_output": piece})
        return await _streaming(events())

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "deepwell"}]}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        body = await _parsed(request, CompletionRequest)
        check(body.model)
        if isinstance(body.prompt, list) and len(body.prompt) != 1:
            raise ClientError(400, f"one prompt per request, not {len(body.prompt)}")
        prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
        settings = scheduler.settings(body, None)
        ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        head = {"id": ident, "object": "text_completion", "created": created, "model": name}
        if body.stream:
            usage = Usage()
            pieces = scheduler.stream(request, prompt, None, settings, usage)

            async def events() -> AsyncIterator[str]:
                async for piece in pieces:
                    yield _sse({**head, "choices": [{"text": piece, "index": 0, "logprobs": None,
                                                     "finish_reason": None}]})
                yield _sse({**head, "choices": [{"text": "", "index": 0, "logprobs": None,
                                                 "finish_reason": usage.finish_reason}]})
                yield DONE
            return await _streaming(events())
        text, usage = await scheduler.complete(request, prompt, None, settings)
        return {**head, "choices": [{"text": text, "index": 0, "logprobs": None,
                                     "finish_reason": usage.finish_reason}], "usage": _usage(usage)}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await _parsed(request, ChatRequest)
        check(body.model)
        messages = [m.model_dump() for m in body.messages]
        settings = scheduler.settings(body, body.max_completion_tokens)
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        head = {"id": ident, "object": "chat.completion", "created": created, "model": name}
        if body.stream:
            usage = Usage()
            pieces = scheduler.stream(request, None, messages, settings, usage)
            chunk = {**head, "object": "chat.completion.chunk"}

            def content(piece: str) -> str:
                return _sse({**chunk, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})

            async def events() -> AsyncIterator[str]:
                first = await anext(pieces, None)  # a refusal (busy) comes before the stream starts
                yield _sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                  "finish_reason": None}]})
                if first is not None:
                    yield content(first)
                async for piece in pieces:
                    yield content(piece)
                yield _sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": usage.finish_reason}]})
                yield DONE
            return await _streaming(events())
        text, usage = await scheduler.complete(request, None, messages, settings)
        return {**head, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": usage.finish_reason}], "usage": _usage(usage)}

    @app.get("/metrics")
    async def prometheus_metrics():
        from fastapi import Response

        content, media = metrics.render()
        return Response(content, media_type=media)

    return app


async def _streaming(events: AsyncIterator[str]) -> StreamingResponse:
    """Start the stream only once its first event is ready, so a refusal (busy, bad settings) is still a plain
    error response with its status instead of a broken stream."""
    first = await anext(events, None)

    async def rest() -> AsyncIterator[str]:
        if first is not None:
            yield first
        async for event in events:
            yield event
    return StreamingResponse(rest(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _usage(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


