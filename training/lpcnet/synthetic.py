"""Small synthetic example shards in the corpus contract's format (tests, CPU throughput checks).

Each speaker has its own pitch range and a 2-pole resonance; the signal of a sequence is an
AR(2)-filtered pulse train plus noise, so the frame LPC (the AR coefficients) predicts it and the
excitation (pulses + noise) is learnable.  Also writes speaker_splits.json and speaker_groups.json.

    python -m pnsc.training.lpcnet.synthetic OUT_DIR [--speakers 8] [--per-speaker 24] [--shards 2]
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

T = 15
FRAME = 160


def _speaker_params(k: int, rng: np.random.Generator):
    f0 = rng.uniform(90, 260)
    r = rng.uniform(0.85, 0.97)
    theta = rng.uniform(0.05, 0.6)
    return f0, np.array([2 * r * np.cos(theta), -r * r])


def make_sequences(n: int, speaker_params, rng: np.random.Generator, T: int = T):
    f0, ar = speaker_params
    L = (T + 1) * FRAME
    feats = np.zeros((n, T + 4, 20), np.float32)
    sig = np.zeros((n, L), np.float32)
    lpc = np.zeros((n, T, 16), np.float32)
    for i in range(n):
        period = 16000.0 / (f0 * rng.uniform(0.9, 1.1))
        voiced = rng.uniform() < 0.8
        e = rng.normal(0, 60 if voiced else 300, L + 100)
        if voiced:
            e[np.arange(int(rng.integers(0, int(period))), L + 100, period).astype(int)] += 3000
        x = np.zeros(L + 100)
        for t in range(2, L + 100):
            x[t] = ar[0] * x[t - 1] + ar[1] * x[t - 2] + e[t]
        x = x[100:]
        x *= 6000.0 / max(1.0, np.abs(x).max())
        sig[i] = np.clip(np.round(x), -32768, 32767)
        lpc[i, :, 0], lpc[i, :, 1] = ar
        ceps = rng.normal(0, 0.5, 18) + np.r_[np.log10(np.mean(x ** 2) + 1.0) * 2, ar * 3, np.zeros(15)]
        feats[i, :, :18] = ceps + rng.normal(0, 0.1, (T + 4, 18))
        feats[i, :, 18] = np.clip(period, 32, 256)
        feats[i, :, 19] = rng.uniform(0.6, 0.95) if voiced else rng.uniform(0.0, 0.3)
    q = feats.copy()
    q[:, :, :18] = np.round(q[:, :, :18] * 4) / 4
    q[:, :, 18] = np.round(q[:, :, 18])
    q[:, :, 19] = np.round(q[:, :, 19] * 3) / 3
    return feats, q, lpc, sig


def write_fixture(out: str | Path, speakers: int = 8, per_speaker: int = 24, shards: int = 2, seed: int = 0,
                  n_groups: int = 2, frames: int = T) -> dict:
    """Shards of sequences of ``frames`` frames (the corpus uses T=15; tests use fewer for speed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = np.array([f"s{k:03d}" for k in range(speakers)])
    parts = {k: [] for k in ("features", "qfeatures", "lpc", "signal", "speaker")}
    for k in range(speakers):
        f, q, l, s = make_sequences(per_speaker, _speaker_params(k, rng), rng, frames)
        parts["features"].append(f); parts["qfeatures"].append(q); parts["lpc"].append(l)
        parts["signal"].append(s); parts["speaker"].append(np.full(per_speaker, k, np.int32))
    allx = {k: np.concatenate(v) for k, v in parts.items()}
    n = len(allx["speaker"])
    order = rng.permutation(n)
    index = {"shards": [], "T": frames}
    for j, idx in enumerate(np.array_split(order, shards)):
        p = out / f"examples-{j:05d}.npz"
        np.savez(p, features=allx["features"][idx].astype(np.float16),
                 qfeatures=allx["qfeatures"][idx].astype(np.float16), lpc=allx["lpc"][idx].astype(np.float32),
                 signal=allx["signal"][idx].astype(np.int16), speaker=allx["speaker"][idx], speakers=names,
                 meta=json.dumps({"synthetic": True, "seed": seed}))
        index["shards"].append({"file": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                                "sequences": int(len(idx))})
    (out / "index.json").write_text(json.dumps(index, indent=1))
    n_val = max(n_groups, speakers // 4)
    splits = {"train": names[n_val:].tolist(), "validation": names[:n_val].tolist(), "test": []}
    (out / "speaker_splits.json").write_text(json.dumps(splits))
    groups = {"default_C": n_groups, "groups": {str(n_groups): {
        "assignment": {s: int(i % n_groups) for i, s in enumerate(names)}}}}
    (out / "speaker_groups.json").write_text(json.dumps(groups))
    return {"dir": str(out), "sequences": n, "speakers": names.tolist(), "splits": splits}



def tiny_train_args(data: str | Path, out: str | Path, *extra) -> list[str]:
    """``train.py`` arguments for a tiny CPU run on a :func:`write_fixture` folder (its group map and splits,
    batch 8, one thread, a log record every step), then ``extra`` (later options win)."""
    data = Path(data)
    return ["--data", str(data), "--out", str(out), "--size", "tiny", "--device", "cpu", "--threads", "1",
            "--groups", str(data / "speaker_groups.json"), "--splits", str(data / "speaker_splits.json"),
            "--batch", "8", "--log-every", "1", *map(str, extra)]

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--speakers", type=int, default=8)
    ap.add_argument("--per-speaker", type=int, default=24)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=T)
    a = ap.parse_args(argv)
    print(json.dumps(write_fixture(a.out, a.speakers, a.per_speaker, a.shards, a.seed, a.groups, a.frames))[:300])


if __name__ == "__main__":
    main()
