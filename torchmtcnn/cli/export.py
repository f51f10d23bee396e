"""`mtcnn export onnx --out DIR [--weights ...] [--opset N]`: write pnet/rnet/onet.onnx."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the networks for other runtimes (ONNX)")
    esub = p.add_subparsers(dest="export_format", metavar="FORMAT")
    esub.required = True
    onnx = esub.add_parser("onnx", help="write pnet.onnx, rnet.onnx and onet.onnx (needs the [onnx] extra)")
    onnx.add_argument("--out", type=Path, required=True, help="folder to write the three files into")
    onnx.add_argument("--weights", default=None,
                      help="weight file, or 'original' (default: the package's weights, else the imported original)")
    onnx.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    onnx.set_defaults(func=_onnx)


def _onnx(args: argparse.Namespace) -> int:
    from ..export import DEFAULT_OPSET, read_onnx_metadata, to_onnx

    written = to_onnx(args.out, weights=args.weights, opset=args.opset or DEFAULT_OPSET)
    for name, path in written.items():
        meta = read_onnx_metadata(path)
        print(f"wrote {path} (outputs {meta['outputs']}; input {meta['input_shape']})")
    meta = read_onnx_metadata(written["onet"])
    print(f"weights {meta['weights_name']} version {meta['weights_version']}, opset {meta['opset']}")
    return 0
