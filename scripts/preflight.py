"""`make preflight`: rehearse every job of a profile's matrix at full size on this device and predict its cost.

python scripts/preflight.py --profile paper                       # every paper job, K=2 steps, on this device
python scripts/preflight.py --profile paper --match dncnn --steps 10
python scripts/preflight.py --profile paper --fabricate data-fake  # no CIFAR-100/DIV2K here: fabricated stand-ins
python scripts/preflight.py --profile paper --bf16 --compile --channels-last   # the GPU paths, on a CPU too

Writes (merges into) results/preflight/<device>.csv and prints each job's step time, memory against the device's,
predicted hours (here, and on one H100 from the FLOP counts: a prediction) and the SLURM time to ask for, then the
matrix's GPU-hours and critical path on 1, 4 and 8 GPUs. A job that would fail is one line; exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from wconv import preflight, profiles, sweep
from wconv.cli_checks import OneLineParser
from wconv.runner import device_for, no_cuda_reason


def main() -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--profile", choices=profiles.names(), default="paper")
    parser.add_argument("--match", action="append", default=[], help="only jobs whose name contains this (repeatable)")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per job, after a warm-up step")
    parser.add_argument("--device", default="auto", help="auto (cuda when usable), cpu or cuda")
    parser.add_argument(
        "--fabricate",
        type=Path,
        default=None,
        metavar="DIR",
        help="write fabricated CIFAR-100 and DIV2K into DIR (rehearsals only) and use DIR as data.root",
    )
    parser.add_argument(
        "--div2k-images",
        type=int,
        nargs=2,
        default=(8, 4),
        metavar=("TRAIN", "VALID"),
        help="how many 2040-wide PNGs --fabricate writes (the real DIV2K: 800 100)",
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (a CPU too)")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model")
    parser.add_argument("--channels-last", action="store_true", help="channels_last on a CPU too")
    parser.add_argument("--partition", default=None, help="check that this SLURM partition exists (sinfo)")
    parser.add_argument("--out", type=Path, default=None, help="default results/preflight/<device>.csv")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every job (after --)")
    args = parser.parse_args()
    if args.steps < 1:
        print("error: --steps must be at least 1", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device}: CUDA is not usable here ({no_cuda_reason()})", file=sys.stderr)
        return 2
    device = device_for(args.device)
    extra = list(args.overrides)
    if args.fabricate is not None:
        from wconv.data.fabricate import fabricate_cifar100, fabricate_div2k, marker

        root = args.fabricate
        if marker(root / "cifar100") is None:
            print(f"fabricating CIFAR-100 (50,000 + 10,000 images) in {root / 'cifar100'}", flush=True)
            fabricate_cifar100(root)
        if (marker(root / "DIV2K") or {}).get("DIV2K_train_HR") != args.div2k_images[0]:
            print(f"fabricating DIV2K ({args.div2k_images[0]} + {args.div2k_images[1]} PNGs) in {root / 'DIV2K'}",
                  flush=True)  # fmt: skip
            fabricate_div2k(root, *args.div2k_images)
        extra = [f"data.root={root}", *extra]
    jobs = sweep.table_jobs(args.profile) + sweep.study_jobs(args.profile)
    if args.match:
        jobs = [job for job in jobs if any(m in job.name for m in args.match)]
    options = preflight.Options(args.steps, args.bf16, args.compile, args.channels_last, args.partition)
    out = args.out or Path("results/preflight") / f"{preflight.device_name(device)}.csv"
    return preflight.run(jobs, extra, device, options, out)


if __name__ == "__main__":
    sys.exit(main())
