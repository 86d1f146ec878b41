"""The digits benchmark at full scale: the numbers in docs/digits.md.

    .venv/bin/python benchmarks/digits_full.py [--out runs/digits_full] [--seed 0] [--scale full] [--repeat]

Runs ``blendset bench digits`` (render the digits scene, train synthetic / real / real + synthetic at every real
budget, the bias fix) and prints, against the baseline measured in the same run (real only at the same budget),
the error ratio of real + synthetic per budget. ``--repeat`` trains the whole table a second time from scratch
with the same seed into OUT-repeat (reusing the renders) and checks every accuracy lies in the first run's CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/digits_full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", default="full", choices=["toy", "small", "full"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", action="store_true", help="determinism check: retrain everything with the same seed")
    args = p.parse_args()

    from trainer.bench.digits import run_digits_benchmark

    t0 = time.time()
    res = run_digits_benchmark(args.out, scale=args.scale, seed=args.seed, device=args.device, progress=print)
    print(open(res["table_md"], encoding="utf-8").read())
    cells = res["cells"]
    real = {c["budget"]: c for c in cells if c["training_set"] == "real"}
    print("budget  real-only err  real+syn err  ratio (real+syn / real-only; < 1 means the renders help)")
    for c in cells:
        if c["training_set"] == "real+synthetic":
            base = real[c["budget"]]
            ratio = c["error"] / base["error"] if base["error"] > 0 else float("nan")
            print(f"{c['budget']:>6}  {base['error']:13.3f}  {c['error']:12.3f}  {ratio:.2f}")
    print("target:", res["target"])
    if "bias_fix" in res:
        fix = res["bias_fix"]
        print(
            "bias fix, weak classes",
            fix["weak_classes"],
            "delta",
            fix["weakest_delta"],
            "overall",
            round(fix["before_overall"]["mean"], 4),
            "->",
            round(fix["after_overall"]["mean"], 4),
        )
    print(f"seconds: {time.time() - t0:.0f}")
    if args.repeat:
        again = args.out.rstrip("/") + "-repeat"
        os.makedirs(again, exist_ok=True)
        for sub in ("renders", "synthetic"):
            if not os.path.exists(os.path.join(again, sub)):
                shutil.copytree(os.path.join(args.out, sub), os.path.join(again, sub))
        res2 = run_digits_benchmark(
            again, scale=args.scale, seed=args.seed, device=args.device, progress=print, with_bias_fix=False
        )
        first = {(c["training_set"], c["budget"]): c for c in cells}
        ok = True
        for c in res2["cells"]:
            a = first[(c["training_set"], c["budget"])]
            inside = a["ci_lo"] <= c["accuracy"] <= a["ci_hi"]
            ok &= inside
            print(
                f"repeat {c['training_set']:>15} @ {c['budget']:>4}: {a['accuracy']:.4f} -> {c['accuracy']:.4f} "
                f"{'within' if inside else 'OUTSIDE'} CI [{a['ci_lo']:.4f}, {a['ci_hi']:.4f}]"
            )
        print("determinism:", "every cell reproduced within its CI" if ok else "FAILED")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
