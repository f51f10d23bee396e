"""`mtcnn export onnx --out DIR [--weights ...] [--opset N]`: write pnet/rnet/onet.onnx;
`mtcnn export onnx --cascade --out FILE`: write the whole cascade as one graph;
`mtcnn export web --out DIR`: write the in-browser page with the graph and onnxruntime-web."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cascade_config import DEFAULTS
from ..errors import MTCNNError
from .common import _positive, _thresholds, thresholds_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the networks for other runtimes (ONNX)")
    esub = p.add_subparsers(dest="export_format", metavar="FORMAT")
    esub.required = True
    onnx = esub.add_parser("onnx", help="write pnet.onnx, rnet.onnx and onet.onnx, or with --cascade the whole "
                                        "cascade as one file (needs the [onnx] extra)")
    onnx.add_argument("--out", type=Path, required=True,
                      help="folder to write the three files into; with --cascade, the .onnx file to write")
    onnx.add_argument("--cascade", action="store_true",
                      help="one graph: RGB uint8 image in, boxes, scores and landmarks out (docs/export.md)")
    onnx.add_argument("--weights", default=None,
                      help="weight file, or 'original' (default: the package's weights, else the imported original)")
    onnx.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    g = onnx.add_argument_group("with --cascade: the settings its metadata gives as the defaults to feed")
    g.add_argument("--min-face-size", type=_positive, default=DEFAULTS.min_face_size,
                   help=f"smallest face in pixels, at least 12 (default {DEFAULTS.min_face_size:g})")
    g.add_argument("--thresholds", type=_thresholds, default=DEFAULTS.thresholds,
                   help=f"P-Net,R-Net,O-Net thresholds (default {thresholds_text()})")
    onnx.set_defaults(func=_onnx)
    site = esub.add_parser("web", help="write a static site that detects in the browser: index.html, cascade.onnx "
                                       "and onnxruntime-web (needs the [onnx] extra and the vendored runtime)")
    site.add_argument("--out", type=Path, required=True, help="folder to write the site into")
    site.add_argument("--weights", default=None,
                      help="weight file, or 'original' (default: the package's weights, else the imported original)")
    site.set_defaults(func=_web)


def _onnx(args: argparse.Namespace) -> int:
    from ..export import DEFAULT_OPSET, read_onnx_metadata, to_onnx

    opset = args.opset or DEFAULT_OPSET
    if args.cascade:
        return _cascade(args, opset)
    written = to_onnx(args.out, weights=args.weights, opset=opset)
    for name, path in written.items():
        meta = read_onnx_metadata(path)
        print(f"wrote {path} (outputs {meta['outputs']}; input {meta['input_shape']})")
    meta = read_onnx_metadata(written["onet"])
    print(f"weights {meta['weights_name']} version {meta['weights_version']}, opset {meta['opset']}")
    return 0


def _cascade(args: argparse.Namespace, opset: int) -> int:
    import dataclasses

    from ..cascade_graph import CascadeExport, cascade_to_onnx
    from ..export import read_onnx_metadata

    try:
        config = dataclasses.replace(DEFAULTS, min_face_size=args.min_face_size, thresholds=args.thresholds)
        settings = CascadeExport(config=config, opset=opset)
    except ValueError as exc:
        raise MTCNNError(str(exc)) from exc
    path = cascade_to_onnx(args.out, weights=args.weights, settings=settings)
    meta = read_onnx_metadata(path)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): image uint8 [H, W, 3] -> boxes [N, 4], "
          f"scores [N], landmarks [N, 5, 2]")
    print(f"weights {meta['weights_name']} version {meta['weights_version']}, thresholds {meta['thresholds']}, "
          f"min_face_size {meta['min_face_size']}, opset {meta['opset']}")
    return 0


def _web(args: argparse.Namespace) -> int:
    from ..cascade_graph import export_cascade
    from ..web import check_runtime, write_site

    check_runtime()  # before the export: WebRuntimeMissing names the command that vendors it
    out = write_site(args.out, export_cascade(args.weights))
    print(f"wrote {out}/index.html, cascade.onnx, model.json and ort/: serve the folder over http "
          f"(e.g. python -m http.server -d {out}) and open it in a browser")
    return 0
