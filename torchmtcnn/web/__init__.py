"""The static web page that runs the whole cascade in the browser (onnxruntime-web), and the
files it needs.

The page (``index.html``) loads ``cascade.onnx`` (``cascade_graph.export_cascade``) and
onnxruntime-web's WebAssembly build from ``ort/`` next to it; detection runs in the page, no
server does any. onnxruntime-web (MIT, from the npm registry) is not in the repository (its
WebAssembly file is 15 MB): ``python -m torchmtcnn.web.vendor`` fetches the pinned version
once with ``npm pack`` and checks every file's sha256 (``.ci/run`` does it). ``mtcnn serve``
serves the page at ``/web/``; ``mtcnn export web --out DIR`` writes a folder any static file
server can serve.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..errors import MTCNNError

WEB_DIR = Path(__file__).parent
PAGE = WEB_DIR / "index.html"
ORT_DIR = WEB_DIR / "ort"
ORT_WEB_VERSION = "1.31.1"
# onnxruntime-web's files the page loads (from the package's dist/), and their sha256.
ORT_FILES = {
    "ort.wasm.min.mjs": "c21d9c326d453a4a61398270c804d5979e118540597cb0c07f7b3d64e6098234",
    "ort-wasm-simd-threaded.mjs": "30ed0b5cd1182ede931fea448afb567d4dc705ec957af09f108a2be5f770dac3",
    "ort-wasm-simd-threaded.wasm": "4b884c203b0fa48d057be3332c65513ff85aa3c5bddd6946acc0fab7ecda001d",
}
FETCH_COMMAND = "python -m torchmtcnn.web.vendor"


class WebRuntimeMissing(MTCNNError):
    """onnxruntime-web's files are not in ``torchmtcnn/web/ort/`` (or not the pinned ones)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_runtime(folder: Path | None = None) -> dict[str, Path]:
    """The vendored onnxruntime-web files {name: path} in ``folder`` (default ORT_DIR);
    WebRuntimeMissing naming the command that fetches them when one is missing or differs
    from the pinned version."""
    folder = ORT_DIR if folder is None else folder
    found = {}
    for name, want in ORT_FILES.items():
        path = folder / name
        if not path.is_file():
            raise WebRuntimeMissing(f"onnxruntime-web {ORT_WEB_VERSION} is not vendored ({path} is missing): "
                                    f"run `{FETCH_COMMAND}` once (needs npm)")
        if sha256(path) != want:
            raise WebRuntimeMissing(f"{path} is not onnxruntime-web {ORT_WEB_VERSION}'s file (sha256 differs): "
                                    f"run `{FETCH_COMMAND}` again")
        found[name] = path
    return found


def write_site(out: str | Path, model: bytes) -> Path:
    """A folder any static file server can serve: index.html, cascade.onnx, model.json and
    ort/ -> its path.

    model: the cascade graph's bytes. Raises WebRuntimeMissing when onnxruntime-web is not
    vendored."""
    runtime = check_runtime()
    out = Path(out)
    (out / "ort").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PAGE, out / "index.html")
    (out / "cascade.onnx").write_bytes(model)
    (out / "model.json").write_text(json.dumps(model_info(model)))
    for name, path in runtime.items():
        shutil.copyfile(path, out / "ort" / name)
    return out


def model_info(model: bytes) -> dict[str, str]:
    """What the page shows and takes as defaults, from the cascade graph's metadata:
    {"weights_name", "weights_version", "thresholds", "min_face_size"} (``model.json``)."""
    from ..export import _import_onnx

    onnx = _import_onnx("Reading the cascade graph's metadata")
    meta = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
    return {k: meta.get(k, "") for k in ("weights_name", "weights_version", "thresholds", "min_face_size")}
