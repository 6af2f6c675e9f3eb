"""Host memory of N local workers reading one image dataset: with the node's decoded cache (one copy, memory-mapped:
``wconv.data.images.decoded``) and without it (each worker decodes its own), as a markdown table.

Each worker is a spawned process, as a search's local workers are, that builds the dataset and reads every pixel;
then, all of them holding it, each reports its resident (RSS) and proportional (PSS: a shared page counted once
over the processes that map it) memory from /proc. The sum of the PSS is what the node holds.

python scripts/bench_memory.py --data div2k --root data-fake --workers 2      # DIV2K (or its fabricated stand-in)
python scripts/bench_memory.py --data train400 --root ../data --workers 4
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile

from wconv.cli_checks import OneLineParser


def _worker(name: str, options: dict, barrier, out) -> None:
    import psutil

    from wconv.data import build

    data = build(name, **options)
    pixels = sum(int(image.sum()) for split in ("train", "val", "test") for image in data._on("cpu", split))
    barrier.wait()  # every worker holds the data now
    info = psutil.Process().memory_full_info()
    out.put((pixels, info.rss, info.pss, info.uss))
    barrier.wait()


def measure(name: str, options: dict, workers: int, cache: str) -> list[tuple[int, int, int, int]]:
    """The workers' (pixel sum, RSS, PSS, USS). The run's own process builds the data before its workers start, as
    a search does: with the cache on, the workers find it built."""
    os.environ["WCONV_DECODED_CACHE"] = cache
    if cache != "off":
        from wconv.data import build

        build(name, **options)
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_worker, args=(name, options, barrier, out)) for _ in range(workers)]
    for p in processes:
        p.start()
    reports = [out.get(timeout=1800) for _ in processes]
    for p in processes:
        p.join()
    return reports


def main() -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="div2k", help="a dataset with image files: div2k, train400, image_folder")
    parser.add_argument("--root", default="data")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    options = {"root": args.root, "grey": False} if args.data == "div2k" else {"root": args.root}
    gib = 2**30
    print(f"{args.workers} workers reading {args.data} under {args.root}")
    print("| decoded images | each worker's RSS (GiB) | each worker's PSS (GiB) | node total: sum of PSS (GiB) |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="wconv-decoded-bench-") as cache:
        for label, setting in (("one memory-mapped copy (the default)", cache), ("one copy per worker", "off")):
            reports = measure(args.data, options, args.workers, setting)
            assert len({r[0] for r in reports}) == 1  # every worker read the same pixels
            rss = ", ".join(f"{r[1] / gib:.2f}" for r in reports)
            pss = ", ".join(f"{r[2] / gib:.2f}" for r in reports)
            print(f"| {label} | {rss} | {pss} | {sum(r[2] for r in reports) / gib:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
