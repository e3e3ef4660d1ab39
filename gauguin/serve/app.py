"""The paint server: FastAPI app with a JSON/HTTP API and the paint page, run by uvicorn.

    GET  /                the paint page (static files under /static, no build step)
    GET  /api/health      liveness, model, queue length, requests served (HEAD: 200, no body)
    GET  /api/labels      label names and colours, image size, style options
    POST /api/generate    {"label_map": PNG (base64), "seed": int, "style_image": PNG/JPEG (base64)} → PNG
                          (Content-Type: application/json)

Every bad request gets a 4xx JSON ``{"detail": "..."}`` that says what was wrong and what to send
instead; the engine's worker is never touched by a request that fails validation.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import email.message
import errno
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from .engine import Engine, EngineBusy, RequestError, decode_label_map, decode_style_image, to_png

STATIC = Path(__file__).parent / "static"
MAX_SEED = 2**63 - 1


class GenerateRequest(BaseModel):
    label_map: str = Field(description="the label map as a PNG, base64 (a data: URL is accepted), read as training "
                                       "reads label files: grey (8- or 16-bit, 1-bit, alpha ignored) or palette "
                                       "pixels are label ids, RGB(A) pixels are the labels' colours")
    seed: int = Field(0, ge=0, lt=MAX_SEED + 1, strict=True,  # strict: no bools, strings or floats
                      description="the random style (models with a style code)")
    style_image: str | None = Field(None, description="an image whose style to copy, base64 (models with a "
                                                      "style encoder); overrides seed")


@dataclass(frozen=True)
class Limits:
    """What the server accepts; each value is checked here, so a server that would refuse every request
    is refused at start (library calls and ``gauguin paint`` alike)."""

    max_request_bytes: int = 8 << 20
    max_pixels: int = 2048 * 1024  # a full Cityscapes frame
    read_timeout_s: float = 30.0  # a request body that sends nothing for this long gets 408

    def __post_init__(self):
        if not isinstance(self.max_request_bytes, int) or self.max_request_bytes < 1:
            raise ValueError(f"max_request_bytes is {self.max_request_bytes!r} (--max-request-mb "
                             f"{_mb(self.max_request_bytes)}): every request would get 413; pass a positive size, "
                             "e.g. --max-request-mb 8 (the default)")
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ValueError(f"max_pixels is {self.max_pixels!r}: every image would get 413; pass a positive "
                             "pixel count, e.g. 2097152 (the default)")
        if not isinstance(self.read_timeout_s, (int, float)) or not self.read_timeout_s > 0:
            raise ValueError(f"read_timeout_s is {self.read_timeout_s!r}: pass a positive number of seconds, "
                             "e.g. 30 (the default)")


def _mb(size) -> str:
    return f"{size / 2**20:g}" if isinstance(size, (int, float)) else "?"


def _b64(text: str, what: str) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise RequestError(f"{what} is not valid base64 ({err})", 400) from err


def _require_json(request: Request) -> None:
    """A body sent as anything but JSON (curl's ``-d`` sends a form) gets 415 before it is validated."""
    given = request.headers.get("content-type")
    message = email.message.Message()
    message["content-type"] = given or ""
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise RequestError(f"the body is sent as Content-Type {given or '(none)'}; send Content-Type: application/json "
                           "(curl: -H 'Content-Type: application/json')", 415)


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, whether it declares its length or
    comes in chunks; a body that sends nothing for ``timeout_s`` gets 408 and its connection is closed
    (a stalled client holds no connection for ever). The app sees only whole bodies within the limit
    (read here, then handed on whole)."""

    def __init__(self, app, limit: int, timeout_s: float):
        self.app, self.limit, self.timeout_s = app, limit, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                return await self._stalled(scope, receive, send, size)
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._too_large(scope, receive, send)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        async def replay():
            nonlocal body
            if body is None:
                return await receive()  # after the body: wait for the disconnect, as the server would
            message, body = {"type": "http.request", "body": body, "more_body": False}, None
            return message

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        response = JSONResponse({"detail": f"request body over the server's limit of {self.limit} bytes; send a "
                                           "smaller label map (the model needs only its own size)"}, 413)
        await response(scope, receive, send)

    async def _stalled(self, scope, receive, send, size: int):
        response = JSONResponse({"detail": f"request body stalled: no data for {self.timeout_s:g} s after {size} "
                                           "bytes; send the whole body at once"}, 408, headers={"Connection": "close"})
        await response(scope, receive, send)


def create_app(engine: Engine, limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    app = FastAPI(title="gauguin paint", version="1", description=__doc__,
                  openapi_tags=[{"name": "paint", "description": "label maps in, images out"}])
    info = engine.info
    started = time.time()

    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError):
        return JSONResponse({"detail": str(err)}, err.status)

    @app.exception_handler(EngineBusy)
    async def busy(request: Request, err: EngineBusy):
        return JSONResponse({"detail": str(err)}, 503, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        for e in err.errors():
            if tuple(e["loc"]) == ("body", "seed"):  # a value the model could take, of the wrong kind: 422
                return JSONResponse({"detail": f"seed is {json.dumps(e.get('input'))}; send a JSON integer in "
                                               f"0..{MAX_SEED} (no quotes, no decimal point)"}, 422)
        problems = "; ".join(
            f"body is not valid JSON ({e['ctx'].get('error', 'decode error')} at character {e['loc'][-1]})"
            if e["type"] == "json_invalid" else f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
            for e in err.errors())
        return JSONResponse({"detail": f"malformed request ({problems}); send JSON like "
                                       '{"label_map": "<base64 PNG>", "seed": 0}'}, 400)

    @app.head("/api/health", tags=["paint"], response_class=Response)
    async def health_head() -> Response:  # load balancers and `curl -I`: 200, no body
        return Response()

    @app.get("/api/health", tags=["paint"])
    async def health() -> dict:  # on the event loop: answers while every worker thread waits on the model
        return {"status": "ok", "family": info.family, "image_size": list(info.image_size),
                "waiting": engine.waiting, "served": engine.served, "cache_hits": engine.cache_hits,
                "backend": f"{type(engine.backend).__name__} {getattr(engine.backend, 'precision', '')}".strip(),
                "uptime_s": round(time.time() - started, 1)}

    @app.get("/api/labels", tags=["paint"])
    async def labels() -> dict:
        return info.to_dict()

    @app.post("/api/generate", tags=["paint"], response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "the generated image"},
                         400: {"description": "malformed JSON or base64"}, 413: {"description": "too large"},
                         408: {"description": "the body stalled"},
                         415: {"description": "not a JSON body, not a PNG, or a PNG mode that holds no label ids"},
                         422: {"description": "label ids out of range, a seed that is no integer in range, or a "
                                              "style the model cannot take"},
                         503: {"description": "queue full, retry"}}, dependencies=[Depends(_require_json)])
    async def generate(body: GenerateRequest) -> Response:
        start = time.perf_counter()
        label_map, style = await run_in_threadpool(decode, body)  # decoding: a worker thread, released
        future = engine.submit(label_map, body.seed, style)   # while the model runs (the loop awaits it)
        try:
            image = await asyncio.wait_for(asyncio.wrap_future(future), engine.timeout_s)
        except asyncio.TimeoutError:
            raise engine.give_up(future) from None
        png = await run_in_threadpool(to_png, image)
        return Response(png, media_type="image/png",
                        headers={"X-Gauguin-Latency-Ms": f"{(time.perf_counter() - start) * 1000:.1f}"})

    def decode(body: GenerateRequest):
        label_map = decode_label_map(_b64(body.label_map, "label_map"), info, limits.max_pixels)
        if not body.style_image:
            return label_map, None
        if not info.style_image:
            raise RequestError("this model has no style encoder: send a seed instead of a style_image")
        return label_map, decode_style_image(_b64(body.style_image, "style_image"), info, limits.max_pixels)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")  # Starlette refuses paths outside it
    app.add_middleware(_BodyLimit, limit=limits.max_request_bytes, timeout_s=limits.read_timeout_s)
    return app


class ListenError(OSError):
    """The server cannot listen where it was asked to; ``errno`` is the bind's, the message one line."""

    def __str__(self) -> str:
        return self.strerror


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (0: a free port); a busy port or an address this machine does not
    have raises :class:`ListenError` with one line naming them and the fix."""
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as err:
        raise ListenError(err.errno, f"cannot open a socket for {host} ({err.strerror or err}); pass another "
                                     "--host") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ListenError(err.errno, f"port {port} on {host} is in use; pass --port N or stop the other "
                                         "server") from None
        raise ListenError(err.errno, f"cannot listen on port {port} on {host} ({err.strerror or err}); pass "
                                     "another --host or --port") from None
    return sock


class PaintServer:
    """uvicorn serving :func:`create_app` in a background thread (tests, benches) or the foreground (CLI).
    ``sock``: a socket from :func:`listen_socket` (bound before a model is loaded), else one is bound here."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0, limits: Limits | None = None,
                 log_level: str = "warning", sock: socket.socket | None = None):
        import uvicorn

        self.socket = sock or listen_socket(host, port)  # bound here, so port 0 gives a free port known before start
        self.engine = engine
        self.app = create_app(engine, limits)
        self.host, self.port = host, self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level=log_level, access_log=False))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self) -> "PaintServer":
        self._thread = threading.Thread(target=self.serve_forever, name="gauguin-paint-server", daemon=True)
        self._thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the paint server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.socket.close()
        self.engine.close()

    def __enter__(self) -> "PaintServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
