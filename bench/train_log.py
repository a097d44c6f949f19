"""Where a training run's time went, from its metrics.jsonl: steps/s and per-step phase medians.

    python bench/train_log.py RUN/metrics.jsonl [--ranges 0,100,400,900,1400]

Each logged row is the mean over its `log_every` steps of data_s (waiting for the DataLoader),
encode_s (VAE + text encoding) and step_s (the DiT step: loss, backward, optimizer). The first
row holds worker start-up and is left out of the rates.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def summarize(rows: list[dict], bounds: list[int]) -> list[dict]:
    """One summary per (lo, hi] step range: mean loss, phase medians, steps/s."""
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        r = [x for x in rows if lo < x["step"] <= hi]
        if len(r) < 2:
            continue
        rate = (r[-1]["step"] - r[0]["step"]) / (r[-1]["time_s"] - r[0]["time_s"])
        out.append({"steps": f"{lo}-{hi}", "loss": statistics.mean(x["loss"] for x in r), "steps_per_s": rate,
                    **{k: statistics.median(x[k] for x in r) for k in ("data_s", "encode_s", "step_s")}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", type=Path)
    ap.add_argument("--ranges", default="", help="step bounds, comma-separated (default: quarters of the run)")
    a = ap.parse_args()
    rows = [json.loads(line) for line in a.metrics.read_text().splitlines() if line.strip()]
    rows = [x for x in rows if "step_s" in x][1:]
    if len(rows) < 2:
        raise SystemExit(f"{a.metrics}: fewer than three logged training rows")
    first, last = rows[0]["step"], rows[-1]["step"]
    bounds = ([int(b) for b in a.ranges.split(",")] + [last] if a.ranges
              else [first - 1 + (last - first + 1) * i // 4 for i in range(5)])
    print("| steps | mean loss | steps/s | data_s | encode_s | step_s |\n| --- | --- | --- | --- | --- | --- |")
    for s in summarize(rows, bounds):
        print(f"| {s['steps']} | {s['loss']:.4f} | {s['steps_per_s']:.2f} | {s['data_s']:.3f} | "
              f"{s['encode_s']:.3f} | {s['step_s']:.3f} |")
    whole = summarize(rows, [first - 1, last])[0]
    print(f"\nwhole run (steps {first}-{last}): {whole['steps_per_s']:.2f} steps/s, DiT step median "
          f"{whole['step_s']:.3f} s, encoding {whole['encode_s']:.3f} s, data {whole['data_s']:.3f} s")


if __name__ == "__main__":
    main()
