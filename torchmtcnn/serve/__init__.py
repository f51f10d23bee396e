"""`mtcnn serve`: an HTTP face-detection service (FastAPI on uvicorn, the [serve] extra).

``create_app(Settings(...))`` builds the app; ``Settings`` needs no extra to import.
"""

from __future__ import annotations

from typing import Any

from .settings import Settings

__all__ = ["Settings", "create_app", "serve"]


def create_app(settings: Settings | None = None, detector: Any = None):
    """The FastAPI app (see ``torchmtcnn.serve.app.create_app``)."""
    from .app import create_app as _create_app

    return _create_app(settings, detector)


def serve(settings: Settings | None = None) -> None:
    """Run the service with uvicorn until interrupted (see ``torchmtcnn.serve.app.serve``)."""
    from .app import serve as _serve

    _serve(settings)
