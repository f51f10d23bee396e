"""The in-browser page at ``/web/``: the whole cascade runs in the browser (onnxruntime-web);
the service only hands out the static files: the page, ``cascade.onnx`` (exported from the
service's weights and defaults on the first request, then kept) and onnxruntime-web's files
(vendored by ``python -m torchmtcnn.web.vendor``).

Every answer carries the cross-origin isolation headers, which let onnxruntime-web use
threads (SharedArrayBuffer) in the page.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse, Response

from .. import web
from ..errors import MTCNNError
from .settings import Settings

log = logging.getLogger(__name__)

ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
             "Cache-Control": "no-cache"}
MEDIA_TYPES = {".mjs": "text/javascript", ".wasm": "application/wasm"}


class CascadeFile:
    """The service's cascade graph, built once on first use (about a second, in a thread)."""

    def __init__(self, settings: Settings, detector: Any) -> None:
        self.settings, self.detector = settings, detector
        self._lock = threading.Lock()
        self._model: bytes | None = None

    def get(self) -> bytes:
        with self._lock:
            if self._model is None:
                from ..cascade_graph import CascadeExport, export_cascade
                from ..cascade_graph.stages import MIN_FACE_FLOOR

                weights = getattr(self.detector, "weights_path", None)
                if weights is None:
                    raise MTCNNError("this service's detector has no weight file to export")
                config = dataclasses.replace(self.detector.config,
                                             min_face_size=max(self.detector.config.min_face_size, MIN_FACE_FLOOR))
                self._model = export_cascade(weights, CascadeExport(config=config))
                log.info("exported the cascade graph for /web/ (%.1f MB)", len(self._model) / 1e6)
            return self._model


def add_web_routes(app: FastAPI, settings: Settings, detector: Any) -> None:
    """``GET /web/`` (the page), ``/web/cascade.onnx``, ``/web/model.json``, ``/web/ort/NAME``."""
    page = web.PAGE.read_text(encoding="utf-8")
    cascade = CascadeFile(settings, detector)

    async def model_bytes() -> bytes:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, cascade.get)
        except MTCNNError as exc:  # MissingExtraError (no onnx), WeightsError
            raise HTTPException(503, f"the cascade graph is not available: {exc}") from None

    @app.get("/web", include_in_schema=False)
    async def web_root() -> RedirectResponse:
        return RedirectResponse("/web/")

    @app.get("/web/", include_in_schema=False)
    async def web_page() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=ISOLATION)

    @app.get("/web/cascade.onnx", include_in_schema=False)
    async def web_model() -> Response:
        return Response(await model_bytes(), media_type="application/octet-stream", headers=ISOLATION)

    @app.get("/web/model.json", include_in_schema=False)
    async def web_model_info() -> Response:
        return Response(json.dumps(web.model_info(await model_bytes())), media_type="application/json",
                        headers=ISOLATION)

    @app.get("/web/ort/{name}", include_in_schema=False)
    async def web_runtime(name: str) -> Response:
        if name not in web.ORT_FILES:
            raise HTTPException(404, f"no such file: {name}")
        path = web.ORT_DIR / name
        if not path.is_file():
            raise HTTPException(404, f"onnxruntime-web is not vendored: run `{web.FETCH_COMMAND}`")
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=ISOLATION)
