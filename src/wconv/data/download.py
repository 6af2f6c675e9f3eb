"""Command line: ``python -m wconv.data.download {cifar100,div2k} --root DIR`` fetches a dataset into the data root."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from wconv.data.base import DataError
from wconv.data.cifar import download_cifar100
from wconv.data.div2k import download_div2k

DOWNLOADERS = {"cifar100": download_cifar100, "div2k": download_div2k}


def main(argv: Sequence[str] | None = None) -> int:
    """Download the named dataset; exit status 1 with a one-line message when it fails."""
    parser = argparse.ArgumentParser(
        prog="python -m wconv.data.download",
        description="Download CIFAR-100 (torchvision, md5-checked) or the DIV2K HR archives (resumable, SHA-256).",
    )
    parser.add_argument("name", choices=sorted(DOWNLOADERS))
    parser.add_argument("--root", default="data", help="data root (default: data)")
    args = parser.parse_args(argv)
    try:
        path = DOWNLOADERS[args.name](args.root)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.name} is ready under {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
