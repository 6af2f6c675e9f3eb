"""`make bench`: overhead of the weighted layer and models against the standard ones.

Writes results/bench/overhead.csv (one row per layer shape or model, ratios from one interleaved run).
"""

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import torch

from wconv.bench import layer_cases, model_cases, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (median taken)")
    parser.add_argument("--no-models", action="store_true", help="time single layers only")
    parser.add_argument("--out", type=Path, default=Path("results/bench/overhead.csv"))
    args = parser.parse_args()
    device = torch.device(args.device)
    repeats = args.repeats or (50 if device.type == "cuda" else 15)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    cases = layer_cases(batch=32, size=32)
    if not args.no_models:
        cases += model_cases(device)
    rows = run(cases, device, repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".csv.tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
