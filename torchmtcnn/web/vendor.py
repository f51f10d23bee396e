"""Fetch onnxruntime-web's files for the page: ``python -m torchmtcnn.web.vendor [--force]``.

A build step, run once (``.ci/run`` runs it): ``npm pack onnxruntime-web@VERSION`` (npm checks
the tarball against the registry's integrity hash), then the three files the page loads are
taken from its ``dist/`` into ``torchmtcnn/web/ort/`` and checked against their pinned sha256.
Nothing is downloaded when the page or the service runs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from . import ORT_DIR, ORT_FILES, ORT_WEB_VERSION, WebRuntimeMissing, check_runtime, sha256

log = logging.getLogger(__name__)


def fetch(folder: Path = ORT_DIR, force: bool = False) -> dict[str, Path]:
    """Vendor onnxruntime-web ORT_WEB_VERSION into ``folder`` -> {name: path}."""
    if not force:
        try:
            return check_runtime(folder)
        except WebRuntimeMissing:
            pass
    npm = shutil.which("npm")
    if npm is None:
        raise WebRuntimeMissing("npm is needed to fetch onnxruntime-web (apt-get install -y npm)")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([npm, "pack", f"onnxruntime-web@{ORT_WEB_VERSION}", "--pack-destination", tmp,
                               "--silent"], capture_output=True, text=True)
        if done.returncode != 0:
            raise WebRuntimeMissing(f"npm pack onnxruntime-web@{ORT_WEB_VERSION} failed: {done.stderr.strip()}")
        tarball = next(Path(tmp).glob("onnxruntime-web-*.tgz"))
        with tarfile.open(tarball) as tar:
            for name, want in ORT_FILES.items():
                member = tar.extractfile(f"package/dist/{name}")
                if member is None:
                    raise WebRuntimeMissing(f"{tarball.name} has no dist/{name}")
                target = folder / name
                with open(target, "wb") as f:
                    shutil.copyfileobj(member, f)
                if sha256(target) != want:
                    target.unlink()
                    raise WebRuntimeMissing(f"dist/{name} of {tarball.name} does not have the pinned sha256")
    (folder / "NOTICE").write_text(f"onnxruntime-web {ORT_WEB_VERSION} (MIT License, Copyright (c) Microsoft "
                                   "Corporation), dist/ files fetched by python -m torchmtcnn.web.vendor\n")
    return check_runtime(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchmtcnn.web.vendor", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="fetch again even when the files are there")
    args = parser.parse_args(argv)
    try:
        files = fetch(force=args.force)
    except WebRuntimeMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in files.values())
    print(f"onnxruntime-web {ORT_WEB_VERSION}: {len(files)} files, {total / 1e6:.1f} MB in {ORT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
