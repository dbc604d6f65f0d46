#!/usr/bin/env python3
"""Real-time factor of the C sample loop for an LPCNet without and with LTP taps (one core).

An S-size model (random weights, seeded; the compute does not depend on the values) is exported twice
with float16 weights, as the shipped decoders: as is (0 taps) and widened to ``--taps`` taps with non-zero
tap columns; both decode the same coded speech (``pnsc.receiver.runtime.bench``) through the streaming
decoder, fp32 and int8, alternating so that machine load hits both alike.

    python scripts/bench_ltp_runtime.py [--seconds 20] [--taps 5] [--size S] [--repeats 2] [--kernel avx2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from pnsc.receiver.runtime.bench import bench_stream, coded_speech_features  # noqa: E402
from pnsc.receiver.runtime.stream import StreamingDecoder  # noqa: E402
from pnsc.training.lpcnet.export import export_model  # noqa: E402
from pnsc.training.lpcnet.model import LPCNet, config_for, widen_for_ltp  # noqa: E402


def _models(root: Path, size: str, taps: int) -> dict[int, Path]:
    torch.manual_seed(0)
    base = LPCNet(config_for(size)).eval()
    wide = LPCNet(config_for(size, taps)).eval()
    wide.load_state_dict(widen_for_ltp(base.state_dict(), wide.cfg))
    with torch.no_grad():
        e = wide.cfg.embed
        w = wide.gru_a.weight_ih_l0
        w[:, 3 * e:(3 + taps) * e] = 0.05 * torch.randn(w.shape[0], taps * e)
    out = {}
    for k, m in ((0, base), (taps, wide)):
        d = root / f"taps{k}"
        files = export_model(m, d / "decoders", "lpcnet-bl-s", {"name": "lpcnet-bl-s"}, fp16_weights=True)
        entry = {"name": "lpcnet-bl-s", "kind": "decoder", "family": "lpcnet-bl-s", "group": "generic",
                 "ltp_taps": k, "files": {n: str(p.relative_to(d)) for n, p in files.items()}}
        (d / "manifest.json").write_text(json.dumps({"models": [entry]}))
        out[k] = d
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="audio decoded per measurement")
    ap.add_argument("--taps", type=int, default=5)
    ap.add_argument("--size", default="S", choices=["S", "L"])
    ap.add_argument("--repeats", type=int, default=2, help="alternating measurements per configuration")
    ap.add_argument("--kernel", default=None, choices=["avx512", "avx2", "generic"], help="default: best here")
    a = ap.parse_args(argv)
    if a.taps < 1 or a.taps % 2 == 0 or a.taps > 9:
        print("pnsc: error: --taps must be odd in 1..9", file=sys.stderr)
        return 2
    feats = coded_speech_features(a.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = _models(Path(tmp), a.size, a.taps)
        best: dict[tuple, dict] = {}
        for rep in range(a.repeats):
            for prec in ("fp32", "int8"):
                for k, d in dirs.items():
                    dec = StreamingDecoder("lpcnet-bl-s", models_dir=d, precision=prec, kernel=a.kernel)
                    bench_stream(dec, feats[:50])
                    dec.reset()
                    r = bench_stream(dec, feats)
                    r.update(taps=k, size=a.size, repeat=rep)
                    print(json.dumps({x: round(v, 4) if isinstance(v, float) else v for x, v in r.items()}), flush=True)
                    key = (prec, k)
                    if key not in best or r["cpu_rtf"] < best[key]["cpu_rtf"]:
                        best[key] = r
    print("\nbest of repeats (CPU-time RTF, wall RTF, p99 ms per frame):")
    for prec in ("fp32", "int8"):
        r0, rk = best[(prec, 0)], best[(prec, a.taps)]
        print(f"  {a.size} {prec:4s} {r0['kernel']}: 0 taps {r0['cpu_rtf']:.4f} / {r0['rtf']:.4f} / {r0['p99_ms']:.2f}"
              f"   {a.taps} taps {rk['cpu_rtf']:.4f} / {rk['rtf']:.4f} / {rk['p99_ms']:.2f}"
              f"   (+{100 * (rk['cpu_rtf'] / r0['cpu_rtf'] - 1):.1f} % CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
