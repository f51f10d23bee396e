"""`mtcnn weights import|info`: import the original weights from a peer package; inspect a file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..weights import PEERS, import_original, read_metadata, read_weights


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="import or inspect weight files")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    wsub.required = True
    imp = wsub.add_parser("import", help="import the original MTCNN weights from an installed peer package")
    imp.add_argument("peer", choices=sorted(PEERS), help="the peer package to read the weights from")
    imp.add_argument("--out", type=Path, help="file to write (default: where MTCNN(weights='original') looks)")
    imp.add_argument("--from", dest="folder", type=Path,
                     help="folder of the peer's files (default: the installed package)")
    imp.set_defaults(func=_import)
    info = wsub.add_parser("info", help="print a weight file's metadata and tensors")
    info.add_argument("path", type=Path)
    info.set_defaults(func=_info)


def _import(args: argparse.Namespace) -> int:
    path = import_original(args.peer, args.out, args.folder)
    print(f"wrote {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    for key, value in sorted(read_metadata(args.path).items()):
        print(f"{key}: {value}")
    for name, t in read_weights(args.path).items():
        print(f"  {name} {tuple(t.shape)}")
    return 0
