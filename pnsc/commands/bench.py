"""``pnsc bench decoder [--json]``: speed of the real-time decoder runtime on this machine.

For every decoder family, fp32 and int8: real-time factor (decode time / audio time) and per-frame
latency (p50 / p99 / max of one ``push``: frame-rate net, 160-sample loop, de-emphasis) over at least
30 s of real coded speech (the bundled samples through the 1.6 kb/s codec), one thread, and the kernel
path that ran (``PNSC_KERNEL`` or ``--kernel`` forces one).  RTF and latencies are wall clock; "cpu RTF"
and "cpu p99" count only the decoding thread's CPU time (what the numbers are on an idle core).
"GRU-A" says which recurrent product ran (dense, or block-sparse for decoders whose GRU-A recurrent matrix has
at most 40 % of its 16x1 blocks non-zero) and "blocks" that fraction.  ``--prune-gru-a DENSITY`` times the sparse
kernel on artificially pruned weights (a speed test only).
"""
from __future__ import annotations

import json
import sys

from ..cli import CommandError


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmarks (decoder runtime speed)", description=__doc__)
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    d = sub.add_parser("decoder", help="real-time factor and frame latency of every decoder", description=__doc__)
    d.add_argument("--json", action="store_true", help="print the results as JSON")
    d.add_argument("--seconds", type=float, default=30.0, help="audio decoded per decoder (default 30)")
    d.add_argument("--families", default=None, help="comma-separated families (default: all four)")
    d.add_argument("--precisions", default="fp32,int8", help="comma-separated: fp32,int8 (default both)")
    d.add_argument("--kernel", choices=("avx512", "avx2", "generic", "onnx"), default=None,
                   help="force a sample-loop path (default: $PNSC_KERNEL or the best this CPU runs)")
    d.add_argument("--group", type=int, default=1, help="speaker group of the personalized decoders (default 1)")
    d.add_argument("--prune-gru-a", type=float, default=None, metavar="DENSITY",
                   help="SPEED TEST ONLY, never for quality: zero all but this fraction (16/N..1, e.g. 0.1) of the "
                        "16x1 blocks of GRU-A's recurrent matrix in memory (largest-magnitude blocks and the diagonal "
                        "of each gate matrix kept; no retraining), to time the block-sparse fp32 kernel that "
                        "decoders trained sparse will run")
    d.add_argument("--gru-a", choices=("auto", "dense", "sparse"), default="auto",
                   help="GRU-A recurrent product: auto (default: block-sparse when at most 40 %% of its 16x1 blocks "
                        "are non-zero, fp32 only), or force dense / sparse (to compare both on the same weights)")
    d.set_defaults(func=run_decoder)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_decoder(args) -> int:
    from pnsc.receiver.reference_decoder import DecoderNotFound
    from pnsc.receiver.runtime import PRECISIONS, KernelUnavailable
    from pnsc.receiver.runtime.bench import FAMILIES, run_benchmark
    from pnsc.receiver.runtime.ckernel import cpu_kernels

    fams = tuple(args.families.split(",")) if args.families else FAMILIES
    precs = tuple(args.precisions.split(","))
    bad = [f for f in fams if f not in FAMILIES] + [p for p in precs if p not in PRECISIONS]
    if bad:
        raise CommandError(f"unknown decoder family or precision: {', '.join(bad)}")
    if args.seconds <= 0:
        raise CommandError("--seconds must be positive")
    if args.prune_gru_a is not None and not (0 < args.prune_gru_a <= 1):
        raise CommandError(f"--prune-gru-a must be a fraction of blocks in (0, 1], got {args.prune_gru_a:g}")

    def progress(r):
        if not args.json:
            print(f"{r['family']:<12} {r['precision']:<5} {r['kernel']:<12} {r['rtf']:7.4f} {r['p50_ms']:8.3f} "
                  f"{r['p99_ms']:8.3f} {r['max_ms']:8.3f} {r['cpu_rtf']:8.4f} {r['cpu_p99_ms']:8.3f} "
                  f"{r['gru_a_layout']:>6} {r['gru_a_density']:7.3f}", flush=True)

    if not args.json:
        print(f"kernels this CPU runs: {', '.join(cpu_kernels())}; one thread; {args.seconds:g} s of coded speech "
              "per decoder", file=sys.stderr)
        if args.prune_gru_a is not None:
            print(f"GRU-A recurrent matrix pruned to {args.prune_gru_a:g} of its 16x1 blocks: a speed test on "
                  "artificially pruned weights; the audio of these decoders is meaningless", file=sys.stderr)
        print(f"{'family':<12} {'prec':<5} {'kernel':<12} {'RTF':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'cpu RTF':>8} {'cpu p99':>8} {'GRU-A':>6} {'blocks':>7}")
    try:
        rows = run_benchmark(args.seconds, fams, precs, args.group, args.kernel, progress,
                             prune_gru_a=args.prune_gru_a, gru_a_layout=args.gru_a)
    except (DecoderNotFound, KernelUnavailable, ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps({"cpu_kernels": cpu_kernels(), "seconds": args.seconds, "prune_gru_a": args.prune_gru_a,
                          "results": rows}, indent=1))
    return 0
