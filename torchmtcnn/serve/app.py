"""The HTTP service: ``POST /detect``, ``GET /health``, ``GET /`` (a page), ``/docs``, and
``GET /web/`` (a page that detects in the browser, ``serve/web.py``).

Detection runs in a bounded pool of threads (``Settings.workers``), never on the event loop,
so ``/health`` and the page answer while photos are being processed. Every refusal is a 4xx
with a JSON body ``{"detail": "<message>"}``; the service goes on serving after each.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
import warnings
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image

from .. import __version__, cascade_config
from ..errors import ImageError, MissingExtraError
from ..faces import FACE_SCHEMA
from ..images import load
from .settings import Settings

try:
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.formparsers import MultiPartException, MultiPartParser
except ImportError as exc:  # the [serve] extra is not installed
    raise MissingExtraError("mtcnn serve", "serve", exc.name or "fastapi") from exc

log = logging.getLogger(__name__)

MIN_FACE_SIZE_RANGE = (10.0, 10_000.0)
_CLOSE = {"Connection": "close"}  # a refused upload: drop the connection, read no more of it
_IMAGE_BODY = {"type": "string", "format": "binary"}
_REQUEST_BODY = {
    "required": True,
    "description": "The image (JPEG, PNG, BMP, WebP, TIFF...), as the raw body or as the "
                   "'file' field of a multipart form.",
    "content": {
        "image/jpeg": {"schema": _IMAGE_BODY},
        "image/png": {"schema": _IMAGE_BODY},
        "application/octet-stream": {"schema": _IMAGE_BODY},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": _IMAGE_BODY}}},
    },
}


# The answer of POST /detect, for the OpenAPI document; a face is the one face JSON
# (``faces.FACE_SCHEMA``), written by ``Faces.to_dicts``.
_DETECTION_SCHEMA = {
    "type": "object",
    "required": ["faces", "count", "width", "height", "model", "min_face_size", "thresholds", "detect_ms", "time_ms"],
    "properties": {
        "faces": {"type": "array", "items": FACE_SCHEMA},
        "count": {"type": "integer"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "model": {"type": "object", "description": "the weights' own name and version",
                  "properties": {"name": {"type": "string"}, "version": {"type": "string"}}},
        "min_face_size": {"type": "number"},
        "thresholds": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
        "detect_ms": {"type": "number", "description": "the detection alone"},
        "time_ms": {"type": "number", "description": "the whole request in the service"},
    },
}


def rss_bytes() -> int:
    """Resident memory of this process in bytes (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def parse_thresholds(text: str) -> tuple[float, float, float]:
    """'0.6,0.7,0.7' -> (0.6, 0.7, 0.7); HTTPException 422 with the reason on anything else."""
    try:
        return cascade_config.parse_thresholds(text)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def check_header(data: bytes, max_pixels: int) -> None:
    """Refuse (413) an image whose header declares more than max_pixels, before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError as exc:
        raise HTTPException(413, f"image is too large to decode: {exc}") from None
    except Exception:  # not a format PIL knows: left to the decoder, which has its own check
        return
    if width * height > max_pixels:
        raise HTTPException(413, f"image is {width}x{height} = {width * height:,} pixels, "
                                 f"over the limit of {max_pixels:,}")


async def read_limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body, chunk by chunk; 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPException(400, f"Content-Length is not a number: {declared!r}") from None
        if size > limit:
            raise HTTPException(413, f"request body is {size:,} bytes, over the limit of {limit:,} bytes",
                                headers=_CLOSE)
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HTTPException(413, f"request body is over the limit of {limit:,} bytes", headers=_CLOSE)
        yield chunk


async def read_image_bytes(request: Request, limit: int) -> bytes:
    """The image of a request: the raw body, or the 'file' field of a multipart form."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        parser = MultiPartParser(request.headers, read_limited(request, limit), max_files=1, max_fields=20)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise HTTPException(400, f"malformed multipart body: {exc.message}") from None
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "multipart body has no 'file' field holding the image")
            data = await upload.read()
        finally:
            await form.close()
    else:
        data = b"".join([chunk async for chunk in read_limited(request, limit)])
    if not data:
        raise HTTPException(400, "empty body: send an image as the body or as the 'file' field of a form")
    return data


class Service:
    """The detector, its thread pool and counters; one per app."""

    def __init__(self, settings: Settings, detector: Any = None) -> None:
        self.settings = settings
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)
        if detector is None:
            from ..detector import MTCNN

            detector = MTCNN(min_face_size=settings.min_face_size, thresholds=settings.thresholds,
                             factor=settings.factor, device=settings.device, weights=settings.weights)
        self.detector = detector
        self.executor: ThreadPoolExecutor | None = None
        self.in_flight = 0
        self.served = 0

    def model(self) -> dict[str, str]:
        """The weights' own name and version (from the weight file's metadata)."""
        d = self.detector
        return {"name": d.weights_name, "version": getattr(d, "weights_version", "unknown")}

    def start(self) -> None:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="mtcnn-detect")

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None

    def detector_for(self, min_face_size: float, thresholds: tuple[float, float, float]) -> Any:
        """The detector with these options: the shared one, or a light copy sharing its nets."""
        config = self.detector.config
        if min_face_size == config.min_face_size and tuple(thresholds) == tuple(config.thresholds):
            return self.detector
        return self.detector.with_config(min_face_size=min_face_size, thresholds=tuple(thresholds))

    def run(self, data: bytes, detector: Any) -> tuple[Any, float]:
        """Decode and detect (in a pool thread) -> (Faces, detection milliseconds)."""
        image = load(data, max_pixels=self.settings.max_pixels)
        start = time.perf_counter()
        faces = detector.detect(np.asarray(image))
        return faces, (time.perf_counter() - start) * 1000


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def create_app(settings: Settings | None = None, detector: Any = None) -> FastAPI:
    """The FastAPI app of the service. ``detector``: an MTCNN to use instead of building one
    from the settings (anything with ``detect``, ``config``, ``weights_name``, ``device``)."""
    settings = settings or Settings()
    service = Service(settings, detector)
    service.start()
    page = resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        log.info("serving %s on %s, %d detection thread(s)", service.detector.weights_name,
                 getattr(service.detector, "device", "?"), settings.workers)
        yield
        service.stop()

    app = FastAPI(title="torchmtcnn", version=__version__, lifespan=lifespan,
                  description="MTCNN face detection: POST an image to /detect.")
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc), "errors": jsonable_encoder(exc.errors())}, 422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and load: answers while detections run."""
        d = service.detector
        return {"status": "ok", "model": service.model(),
                "device": str(getattr(d, "device", "")), "workers": settings.workers,
                "in_flight": service.in_flight, "served": service.served, "rss_bytes": rss_bytes()}

    @app.post("/detect", openapi_extra={"requestBody": _REQUEST_BODY},
              responses={200: {"description": "the faces found",
                               "content": {"application/json": {"schema": _DETECTION_SCHEMA}}},
                         400: {"description": "empty body, not an image, truncated image"},
                         413: {"description": "body or image over the limits"},
                         422: {"description": "invalid options"},
                         503: {"description": "too many requests waiting"}})
    async def detect(
        request: Request,
        min_face_size: float | None = Query(None, ge=MIN_FACE_SIZE_RANGE[0], le=MIN_FACE_SIZE_RANGE[1],
                                            description="smallest face in pixels (default: the service's)"),
        thresholds: str | None = Query(None, description="P-Net,R-Net,O-Net thresholds, e.g. 0.6,0.7,0.7"),
    ) -> dict[str, Any]:
        """Faces in one image: boxes, scores and five named landmarks, in pixels."""
        start = time.perf_counter()
        config = service.detector.config
        mfs = float(min_face_size) if min_face_size is not None else float(config.min_face_size)
        ths = parse_thresholds(thresholds) if thresholds is not None else tuple(config.thresholds)
        if settings.max_queue and service.in_flight >= settings.max_queue:
            raise HTTPException(503, f"busy: {service.in_flight} requests in progress, try again",
                                headers={"Retry-After": "1"})
        service.in_flight += 1
        try:
            data = await read_image_bytes(request, settings.max_body_bytes)
            check_header(data, settings.max_pixels)
            detector = service.detector_for(mfs, ths)
            loop = asyncio.get_running_loop()
            try:
                faces, detect_ms = await loop.run_in_executor(service.executor, service.run, data, detector)
            except ImageError as exc:
                message = str(exc).removeprefix("image bytes: ")
                raise HTTPException(413 if "over the limit" in message else 400, message) from None
        finally:
            service.in_flight -= 1
        service.served += 1
        h, w = faces.image_size
        return {"faces": faces.to_dicts(), "count": len(faces), "width": w, "height": h,
                "model": service.model(),
                "min_face_size": mfs, "thresholds": list(ths), "detect_ms": round(detect_ms, 2),
                "time_ms": round((time.perf_counter() - start) * 1000, 2)}

    from .web import add_web_routes

    add_web_routes(app, settings, service.detector)
    return app


def serve(settings: Settings | None = None) -> None:
    """Run the service with uvicorn (one process) until interrupted."""
    import uvicorn

    settings = settings or Settings()
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info",
                limit_concurrency=max(settings.max_queue * 2, 32) if settings.max_queue else None)
