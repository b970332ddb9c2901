"""The receiver service: ``.jcc`` bitstreams in, predictions out (FastAPI).

    POST /v1/classify[?top_k=K]   body: one .jcc file (one or many images), Content-Type application/octet-stream
    GET  /v1/model                fingerprint, preset, levels, classes, latent shape, limits
    GET  /healthz                 liveness and load

Every error is JSON ``{"error": CODE, "detail": MESSAGE}`` with a 4xx status for anything a client sent:
400 damaged or impossible bitstreams, 409 a bitstream of another model, 413 a body or image count over the
limits, 415 a wrong content type, 422 bad query parameters; 503 when the queue is full, 504 on timeout.
``docs/deployment.md`` documents the API.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jointcodec.bitstream import (
    FORMAT_VERSION,
    BitstreamError,
    CorruptBitstreamError,
    TruncatedBitstreamError,
    UnsupportedVersionError,
    WrongModelError,
    image_count,
    unpack,
)
from jointcodec.errors import JointCodecError
from jointcodec.serve.codec import Codec, prediction_entries
from jointcodec.serve.settings import ServeSettings
from jointcodec.serve.worker import BusyError, ClassifierPool, RequestTimeoutError

DRAIN_BYTES = 16 << 20  # oversized bodies up to this size are read and dropped before the 413 answer
ACCEPTED_TYPES = ("application/octet-stream", "application/x-jointcodec", "application/vnd.jointcodec.jcc")


class ServiceError(JointCodecError):
    """An error with its HTTP status and JSON error code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def status_of(err: Exception) -> tuple[int, str]:
    """HTTP status and JSON error code of an error raised while serving a request."""
    table: list[tuple[type, int, str]] = [
        (WrongModelError, 409, "wrong_model"), (TruncatedBitstreamError, 400, "truncated_bitstream"),
        (UnsupportedVersionError, 400, "unsupported_version"), (CorruptBitstreamError, 400, "corrupt_bitstream"),
        (BitstreamError, 400, "bad_bitstream"), (BusyError, 503, "busy"), (RequestTimeoutError, 504, "timeout"),
    ]
    if isinstance(err, ServiceError):
        return err.status, err.code
    for kind, status, code in table:
        if isinstance(err, kind):
            return status, code
    if isinstance(err, JointCodecError):
        return 400, "bad_request"
    return 500, "internal_error"


def limit_blas_threads(threads: int) -> None:
    """Cap numpy's BLAS threads (the integer context model's products are small; parallelism comes from the
    workers, and oversubscribed BLAS threads slow everything down). Needs threadpoolctl; else the
    environment (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS) decides."""
    if threads <= 0:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=threads, user_api="blas")


def expected_latent_shape(codec: Codec) -> tuple[int, int, int]:
    """The latent shape the model's encoder produces for its input size (the server part has no encoder:
    a freshly built one of the same preset gives the shape)."""
    from jointcodec.checkpoint import MissingPart
    from jointcodec.models import create_model, preset_from_dict

    preset = codec.config["preset"]
    encoder = codec.model.encoder
    if isinstance(encoder, MissingPart):
        encoder = create_model(preset_from_dict(preset), codec.config["levels"], codec.config["num_classes"]).encoder
    size = int(preset["image_size"])
    with torch.no_grad():
        return tuple(int(v) for v in encoder.eval()(torch.zeros(1, 3, size, size)).shape[1:])


def create_app(checkpoint: str | Path | Codec, settings: ServeSettings | None = None) -> FastAPI:
    """The service for one model: a checkpoint (run directory, .safetensors, shipped name, server part)."""
    settings = settings or ServeSettings()
    settings.check()
    torch.set_num_threads(settings.torch_threads)
    limit_blas_threads(settings.blas_threads)
    codec = checkpoint if isinstance(checkpoint, Codec) else Codec.load(checkpoint)
    latent_shape = expected_latent_shape(codec)
    codec.fixed.coding_order(latent_shape)  # checked and cached before the first request
    pool = ClassifierPool(codec, settings.workers, settings.max_pending, settings.batching,
                          settings.max_batch_images, settings.batch_wait_ms)
    model_info = {
        "model": codec.fingerprint.hex(), "fingerprint": codec.fingerprint.hex(),
        "preset": codec.config.get("preset", {}).get("name"), "levels": codec.fixed.levels,
        "classes": codec.classes, "num_classes": codec.config.get("num_classes"),
        "image_size": codec.config.get("preset", {}).get("image_size"), "latent_shape": list(latent_shape),
        "context_kind": codec.fixed.kind, "container_version": FORMAT_VERSION,
        "limits": {k: v for k, v in asdict(settings).items() if k not in ("torch_threads", "blas_threads")},
    }

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await pool.close()

    app = FastAPI(title="jointcodec receiver", version="1", lifespan=lifespan)
    app.state.pool, app.state.codec, app.state.settings = pool, codec, settings

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return error_response(err.status_code, code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, err: RequestValidationError) -> JSONResponse:
        detail = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in err.errors())
        return error_response(422, "invalid_request", detail)

    @app.exception_handler(JointCodecError)
    async def codec_error(_request: Request, err: JointCodecError) -> JSONResponse:
        status, code = status_of(err)
        return error_response(status, code, str(err))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, err: Exception) -> JSONResponse:  # a bug: still JSON, still alive
        return error_response(500, "internal_error", f"{type(err).__name__}: {err}")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "model": model_info["model"], "pending": pool.pending, "completed": pool.completed,
                "batches": pool.batches, "workers": settings.workers, "pid": os.getpid()}

    @app.get("/v1/model")
    async def model() -> dict:
        return model_info

    @app.post("/v1/classify")
    async def classify(request: Request, top_k: int = Query(1, ge=1, le=1000)) -> dict:
        received = time.perf_counter()
        _check_content_type(request.headers.get("content-type"))
        data = await _read_body(request, settings.max_body_bytes)
        if not data:
            raise ServiceError(400, "empty_body", "the request body is empty; send the bytes of a .jcc file")
        count = image_count(data)  # header only: refuse huge image counts before parsing them
        if count > settings.max_images:
            raise ServiceError(413, "too_many_images", f"the bitstream holds {count} images; this service "
                                                       f"takes at most {settings.max_images} per request")
        container = codec.read(unpack(data))  # 400 damaged, 409 another model
        if tuple(container.latent_shape) != latent_shape:
            raise CorruptBitstreamError(f"corrupt bitstream: latent shape {container.latent_shape} does not match "
                                        f"the model's {latent_shape}")
        result = await pool.classify(container, settings.timeout_s)
        return {"model": model_info["model"], "count": container.count,
                "predictions": prediction_entries(result.probabilities, codec.classes, top_k),
                "decode_ms": 1000 * result.decode_s, "classify_ms": 1000 * result.classify_s,
                "queue_ms": 1000 * result.queue_s, "total_ms": 1000 * (time.perf_counter() - received),
                "batch_images": result.batch_images}

    return app


def _check_content_type(value: str | None) -> None:
    media = (value or "application/octet-stream").split(";")[0].strip().lower()
    if media not in ACCEPTED_TYPES:
        hint = " (curl: add -H 'Content-Type: application/octet-stream')" if "form" in media else ""
        raise ServiceError(415, "unsupported_media_type", f"send the .jcc bytes as application/octet-stream, "
                                                          f"not {media}{hint}")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 when it is over ``limit`` bytes (announced or actual); never more than ``limit`` bytes
    in memory. An oversized body of up to DRAIN_BYTES is still read (and dropped) so that the client, which
    is usually still sending, gets the 413 answer instead of a reset connection."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else None
    if size is not None and size > max(limit, DRAIN_BYTES):
        raise ServiceError(413, "body_too_large", f"the body has {size} bytes; this service takes at most {limit}")
    chunks, received = [], 0
    async for chunk in request.stream():
        received += len(chunk)
        if received <= limit:
            chunks.append(chunk)
        elif received > DRAIN_BYTES:
            break
    if received > limit:
        raise ServiceError(413, "body_too_large", f"the body has {size or 'more than ' + str(limit)} bytes; this "
                                                  f"service takes at most {limit}")
    return b"".join(chunks)
