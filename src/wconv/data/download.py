"""Command line: ``python -m wconv.data.download {cifar100,div2k,denoise-sets,<set>} --root DIR`` fetches a dataset
into the data root; ``denoise-sets`` fetches every small denoising set, ``<set>`` one of them (e.g. ``set12``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from wconv.cli_checks import OneLineParser
from wconv.data.base import DataError
from wconv.data.cifar import download_cifar100
from wconv.data.denoise_sets import DENOISE_SETS, download_denoise_set
from wconv.data.div2k import download_div2k
from wconv.data.images import list_images

DOWNLOADERS = {"cifar100": download_cifar100, "div2k": download_div2k}
ALL_DENOISE_SETS = "denoise-sets"


def main(argv: Sequence[str] | None = None) -> int:
    """Download the named dataset(s); exit status 1 with a one-line message when it fails."""
    parser = OneLineParser(
        prog="python -m wconv.data.download",
        description="Download CIFAR-100 (torchvision, md5-checked), the DIV2K HR archives (resumable, SHA-256) or the "
        "small denoising sets (per file from the authors' GitHub repositories at pinned commits, resumable; SHA-256 "
        "for the grey sets, decoding for the colour ones) into <root>/denoise/<set>/.",
    )
    parser.add_argument("name", choices=[*DOWNLOADERS, ALL_DENOISE_SETS, *DENOISE_SETS])
    parser.add_argument("--root", default="data", help="data root (default: data)")
    args = parser.parse_args(argv)
    try:
        if args.name in DOWNLOADERS:
            print(f"{args.name} is ready under {DOWNLOADERS[args.name](args.root)}")
        else:
            for name in DENOISE_SETS if args.name == ALL_DENOISE_SETS else [args.name]:
                folder = download_denoise_set(args.root, name)
                print(f"{name}: {len(list_images(folder))} images under {folder}")
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a read-only or full data root: what was fetched stays, the next run resumes
        where = f" {error.filename}" if error.filename else ""
        print(f"error: cannot write{where}: {error.strerror or error}; choose a writable --root", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume the download", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
