"""`make bench`: overhead of the weighted layer and models against the standard ones.

Writes results/bench/overhead.csv (one row per layer shape or model, ratios from one interleaved run) and, with
--epochs, results/bench/epochs.csv: seconds per epoch of the real training loop (on a CPU, a share of the epoch
scaled up: an estimate; `standard_repeat` is a second standard run, the noise floor of the ratio); with
--efficiency, results/bench/efficiency.csv: whole epochs (validation, checkpoints, logging) over training steps.
"""

import os
import sys
from pathlib import Path

import pandas as pd
import torch

from wconv.bench import EFFICIENCY_CASES, EPOCH_CASES, epoch_efficiency, epoch_seconds, layer_cases, model_cases, run
from wconv.cli_checks import OneLineParser


def main() -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (median taken)")
    parser.add_argument("--no-models", action="store_true", help="time single layers only")
    parser.add_argument("--epochs", action="store_true", help="also time whole epochs of the four models")
    parser.add_argument("--fraction", type=float, default=None, help="share of an epoch to time (CPU: 0.01)")
    parser.add_argument("--efficiency", action="store_true", help="also whole epochs over training steps alone")
    parser.add_argument("--out", type=Path, default=Path("results/bench/overhead.csv"))
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = args.repeats or (50 if device.type == "cuda" else 15)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cases = layer_cases(batch=32, size=32)
    if not args.no_models:
        cases += model_cases(device)
    write(pd.DataFrame(run(cases, device, repeats)), args.out)
    if args.epochs:
        fraction = args.fraction or (1.0 if device.type == "cuda" else 0.01)
        rows = []
        for case in EPOCH_CASES:
            row = epoch_seconds(*case, device=device, fraction=fraction)
            rows.append({**row, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"})
            print(
                f"{row['case']:<10} epoch standard {row['standard_epoch_s']:8.1f} s  weighted/standard "
                f"{row['ratio']:.3f}  (repeat/standard {row['standard_repeat_epoch_s'] / row['standard_epoch_s']:.3f})"
            )
        write(pd.DataFrame(rows), args.out.with_name("epochs.csv"))
    if args.efficiency:
        rows = [epoch_efficiency(name, device) for name in EFFICIENCY_CASES]
        for row in rows:
            print(f"{row['case']:<8} whole epochs / training steps: {row['efficiency_ratio']:.3f}")
        write(pd.DataFrame(rows), args.out.with_name("efficiency.csv"))
    return 0


def write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
