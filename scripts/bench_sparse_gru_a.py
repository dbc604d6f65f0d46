"""Speed of the block-sparse GRU-A kernel against the dense one on artificially pruned shipped decoders.

SPEED TEST ONLY: GRU-A's recurrent matrix is pruned in memory to each density (largest 16x1 blocks and the
diagonal kept, no retraining), so the audio means nothing.  For each size (plpcnet-s, plpcnet-l group 1),
density and layout (dense / sparse, on the same pruned weights), fp32, one thread: the median over
``--repeats`` runs of the real-time factor by thread CPU time (cpu RTF; the machine may be shared) and by the
wall clock.  Usage: ``python scripts/bench_sparse_gru_a.py [--densities 1,0.2,0.1] [--seconds 10] [--repeats 5]``
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from pnsc.receiver.runtime.bench import run_benchmark  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--densities", default="1,0.2,0.1")
    ap.add_argument("--families", default="plpcnet-s,plpcnet-l")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--kernel", default=None, choices=("avx512", "avx2", "generic"))
    a = ap.parse_args()
    dens = [float(d) for d in a.densities.split(",")]
    print(f"{'family':<10} {'density':>7} {'layout':>6} {'kernel':>11} {'cpu RTF':>8} {'wall RTF':>8}  (median of "
          f"{a.repeats} x {a.seconds:g} s)", flush=True)
    for fam in a.families.split(","):
        for d in dens:
            for layout in ("dense", "sparse"):
                cpu, wall, kern = [], [], ""
                for _ in range(a.repeats):
                    (r,) = run_benchmark(a.seconds, (fam,), ("fp32",), 1, a.kernel,
                                         prune_gru_a=None if d == 1 else d, gru_a_layout=layout)
                    cpu.append(r["cpu_rtf"])
                    wall.append(r["rtf"])
                    kern = r["kernel"]
                print(f"{fam:<10} {d:7.3f} {layout:>6} {kern:>11} {np.median(cpu):8.4f} {np.median(wall):8.4f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
