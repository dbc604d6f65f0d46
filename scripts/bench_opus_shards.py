#!/usr/bin/env python3
"""Is Ogg Opus transparent for training? Sizes, LPCNet feature differences and validation loss of trained
decoders on Opus-coded vs original (FLAC) audio, per bitrate.

    OMP_NUM_THREADS=1 python scripts/bench_opus_shards.py --audio data/audio_shards \
        --bitrates 24,32,48,64 --ckpt runs/r4/lpcnet-bl-s/last.pt --ckpt runs/r4/lpcnet-bl-l/last.pt

(a) bytes per audio hour, FLAC vs Opus, on the validation shard and one train shard, and the MiB the whole
    train split would take; (b) per-dimension RMS difference of the codec core's features (cepstrum,
    pitch period, pitch correlation) of Opus-decoded vs original audio and how often each field of the
    1.6 kb/s packets differs; (c) the teacher-forced cross-entropy (quantized features, no noise, as
    validation in train.py) of each checkpoint on validation examples built (same seed, copy 0) from the
    original and from the Opus-decoded audio, and its relative difference.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _decoded(audio_dir: Path, shard: str, limit: int | None) -> dict[str, np.ndarray]:
    from pnsc.training.corpus.shards import iter_shard_audio

    out = {}
    for rec, audio in iter_shard_audio(audio_dir / shard):
        out[rec["utt"]] = audio
        if limit is not None and len(out) >= limit:
            break
    return out


def _modes(shard: Path) -> tuple[dict[str, int], float]:
    """Opus packet modes over a shard, and the fraction of utterances with any SILK/hybrid packet."""
    import tarfile

    from pnsc.training.corpus.audio_codec import opus_packet_modes

    total = {"silk": 0, "hybrid": 0, "celt": 0}
    mixed = n = 0
    with tarfile.open(shard, "r:") as tar:
        for m in tar.getmembers():
            if m.name.endswith(".opus"):
                c = opus_packet_modes(tar.extractfile(m).read())
                total = {k: total[k] + c[k] for k in total}
                mixed += (c["silk"] + c["hybrid"]) > 0
                n += 1
    return total, mixed / max(1, n)


def _dithered_copy(audio_dir: Path, shard: str, out: Path) -> Path:
    """A FLAC copy of ``shard`` with +-1 LSB of uniform integer noise added (seeded): the smallest
    change of the audio, as a reference for what 'no difference' looks like in (b) and (c)."""
    from pnsc.training.corpus.audio_codec import encode_member
    from pnsc.training.corpus.shards import _write_index, iter_shard_audio, write_shard_tar

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records, members = [], []
    for rec, audio in iter_shard_audio(audio_dir / shard):
        pcm = np.round(audio * 32768.0).astype(np.int32) + rng.integers(-1, 2, len(audio))
        members.append((rec["member"], encode_member(np.clip(pcm, -32768, 32767).astype(np.int16), "flac")))
        records.append(rec)
    entry = {"file": shard, "split": records[0]["split"], **write_shard_tar(out / shard, records, members)}
    _write_index(out, {"version": 1, "kind": "audio", "complete": True, "shards": [entry]})
    return out


def _features(audio: dict[str, np.ndarray], cb) -> dict[str, tuple[np.ndarray, dict]]:
    from pnsc.shared.bitstream import unpack_array
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    out = {}
    for utt, x in audio.items():
        f = extract_features(x)
        f = f[: len(f) // 4 * 4]
        packets, _ = quantize_features(f, cb)
        out[utt] = (f, unpack_array(packets))
    return out


def feature_diff(ref: dict, test: dict) -> dict:
    """RMS differences of features and packet-field mismatch rates, test vs ref, over all utterances."""
    from pnsc.shared.constants import CORR_INDEX, NB_CEPS, PERIOD_INDEX, VOICED_CORR

    fr = np.concatenate([ref[u][0] for u in ref])
    ft = np.concatenate([test[u][0] for u in ref])
    d = ft - fr
    voiced = fr[:, CORR_INDEX] >= VOICED_CORR
    fields = {}
    for name in ref[next(iter(ref))][1]:
        a = np.concatenate([ref[u][1][name] for u in ref])
        b = np.concatenate([test[u][1][name] for u in ref])
        fields[name] = float(np.mean(a != b))
    rel_period = np.abs(d[voiced, PERIOD_INDEX]) / fr[voiced, PERIOD_INDEX]
    return {"frames": len(fr), "ceps_rms": np.sqrt(np.mean(d[:, :NB_CEPS] ** 2, axis=0)).tolist(),
            "ceps_std": fr[:, :NB_CEPS].std(0).tolist(),
            "period_rms": float(np.sqrt(np.mean(d[:, PERIOD_INDEX] ** 2))),
            "period_rms_voiced": float(np.sqrt(np.mean(d[voiced, PERIOD_INDEX] ** 2))),
            "period_off_5pct_voiced": float(np.mean(rel_period > 0.05)),
            "corr_rms": float(np.sqrt(np.mean(d[:, CORR_INDEX] ** 2))), "corr_std": float(fr[:, CORR_INDEX].std()),
            "fields": fields}


def val_losses(ckpts: list[Path], data: dict[str, Path], features: str, batch: int) -> dict:
    import torch

    from pnsc.training.lpcnet.data import ShardSet, load_group_map, select_speakers
    from pnsc.training.lpcnet.model import LPCNet, config_for
    from pnsc.training.lpcnet.train import Dist, validate

    group_map = load_group_map(REPO / "models/training_groups.json")
    n_groups = max(group_map.values()) + 1
    spk = select_speakers(REPO / "models/speaker_splits.json", "validation", group_map, None)
    sets = {k: ShardSet([str(v)], spk, group_map=group_map, device="cpu", max_resident_mb=4000, seed=0)
            for k, v in data.items()}
    D = Dist("cpu")
    out: dict = {}
    for ck_path in ckpts:
        ck = torch.load(ck_path, map_location="cpu", weights_only=False)
        model = LPCNet(config_for(ck["args"]["size"]))
        model.load_state_dict(ck["model"])
        name = f"{ck_path.parent.name}/{ck_path.name}"
        out[name] = {}
        for k, s in sets.items():
            t0 = time.monotonic()
            with torch.no_grad():
                total, _ = validate(model, s, features, batch, D, None, n_groups)
            out[name][k] = total
            print(f"  {name} on {k}: {total:.5f} ({s.n} sequences, {time.monotonic() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", type=Path, default=REPO / "data" / "audio_shards")
    ap.add_argument("--val-shard", default="audio-validation-00000.tar")
    ap.add_argument("--train-shard", default="audio-train-00000.tar")
    ap.add_argument("--bitrates", default="24,32,48,64", help="Opus kb/s, comma-separated")
    ap.add_argument("--loss-bitrates", default=None, help="bitrates for (c) (default: --bitrates)")
    ap.add_argument("--train-feature-utts", type=int, default=40, help="train utterances for (b)")
    ap.add_argument("--no-dither-reference", action="store_true",
                    help="skip the +-1 LSB dither reference row in (b) and (c)")
    ap.add_argument("--ckpt", type=Path, action="append", default=[], help="checkpoint(s) for (c)")
    ap.add_argument("--features", default="qfeatures", choices=["qfeatures", "features"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--loss-mib", type=float, default=None,
                    help="(c) on the first validation example shard of this size only (faster; default all)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pnsc.shared.quantizer import load_codebooks
    from pnsc.training.corpus.examples import build_examples
    from pnsc.training.corpus.shards import load_index
    from pnsc.training.corpus.transcode import transcode_shards

    rates = [float(r) for r in a.bitrates.split(",")]
    loss_rates = [float(r) for r in a.loss_bitrates.split(",")] if a.loss_bitrates else rates
    work = a.work or Path(tempfile.mkdtemp(prefix="bench_opus_"))
    index = load_index(a.audio)
    entry = {s["file"]: s for s in index["shards"]}
    train_h = sum(s["seconds"] for s in index["shards"] if s["split"] == "train") / 3600
    train_flac = sum(s["bytes"] for s in index["shards"] if s["split"] == "train") / 2**20
    result: dict = {"train_hours": train_h, "train_flac_mib": train_flac, "sizes": {}, "features": {}, "loss": {}}

    # (a) sizes
    print(f"(a) size; whole train split: {train_h:.2f} h, {train_flac:.1f} MiB as FLAC")
    print(f"{'shard':28s} {'codec':8s} {'kb/s':>6s} {'MiB/h':>7s} {'train MiB':>9s}")
    dirs: dict[str, dict[str, Path]] = {a.val_shard: {}, a.train_shard: {}}
    for shard in (a.val_shard, a.train_shard):
        e = entry[shard]
        flac_mibh = e["bytes"] / 2**20 / (e["seconds"] / 3600)
        print(f"{shard:28s} {'flac':8s} {e['bytes'] * 8 / e['seconds'] / 1000:6.1f} {flac_mibh:7.1f} "
              f"{flac_mibh * train_h:9.1f}")
        for r in sorted(set(rates) | set(loss_rates)):
            if shard == a.train_shard and r not in rates:
                continue
            d = work / f"{Path(shard).stem}-opus{r:g}"
            idx = transcode_shards(a.audio, [shard], d, "opus", r, 60.0, progress=False)
            b = sum(s["bytes"] for s in idx["shards"])
            sec = sum(s["seconds"] for s in idx["shards"])
            mibh = b / 2**20 / (sec / 3600)
            dirs[shard][f"opus{r:g}"] = d
            modes, not_celt = _modes(d / idx["shards"][0]["file"])
            result["sizes"][f"{shard}:opus{r:g}"] = {"kbps": b * 8 / sec / 1000, "mib_per_h": mibh,
                                                      "train_mib": mibh * train_h, "packet_modes": modes,
                                                      "utterances_not_all_celt": not_celt}
            n = max(1, sum(modes.values()))
            print(f"{shard:28s} {'opus':8s} {b * 8 / sec / 1000:6.1f} {mibh:7.1f} {mibh * train_h:9.1f}"
                  f"   (target {r:g} kb/s; packets SILK {modes['silk'] / n:.0%} hybrid {modes['hybrid'] / n:.0%}"
                  f" CELT {modes['celt'] / n:.0%}; utterances with non-CELT packets {not_celt:.0%})", flush=True)

    # (b) features
    cb = load_codebooks()
    print("\n(b) features of Opus-decoded vs original audio (validation shard + "
          f"{a.train_feature_utts} train utterances)")
    ref = {**_features(_decoded(a.audio, a.val_shard, None), cb),
           **_features(_decoded(a.audio, a.train_shard, a.train_feature_utts), cb)}
    names = None
    if not a.no_dither_reference:
        for shard in (a.val_shard, a.train_shard):
            dirs[shard]["dither"] = _dithered_copy(a.audio, shard, work / f"{Path(shard).stem}-dither")
    for r in (["dither"] if not a.no_dither_reference else []) + rates:
        key = r if r == "dither" else f"opus{r:g}"
        test = {**_features(_decoded(dirs[a.val_shard][key], idx_file(dirs[a.val_shard][key]), None), cb),
                **_features(_decoded(dirs[a.train_shard][key], idx_file(dirs[a.train_shard][key]),
                                     a.train_feature_utts), cb)}
        fd = feature_diff(ref, test)
        result["features"][key] = fd
        if names is None:
            names = list(fd["fields"])
            print(f"{'kb/s':>6s} {'frames':>6s} {'c0':>6s} {'c1-17':>6s} {'max':>6s} {'period':>7s} {'(voic)':>7s} "
                  f"{'>5%':>6s} {'corr':>6s} | packet fields differing: " + " ".join(f"{n:>8s}" for n in names))
        c = np.asarray(fd["ceps_rms"])
        label = r if r == "dither" else format(r, "g")
        print(f"{label:>6} {fd['frames']:6d} {c[0]:6.3f} {np.sqrt(np.mean(c[1:] ** 2)):6.3f} {c.max():6.3f} "
              f"{fd['period_rms']:7.2f} {fd['period_rms_voiced']:7.2f} {fd['period_off_5pct_voiced']:6.3f} "
              f"{fd['corr_rms']:6.3f} |                          "
              + " ".join(f"{fd['fields'][n]:8.3f}" for n in names), flush=True)
    print("spectral level change, Opus vs original, dB per 1 kHz band (validation shard):")
    print(f"{'kb/s':>5s} " + " ".join(f"{k}-{k + 1}k" for k in range(8)))
    for r in rates:
        key = f"opus{r:g}"
        tilt = band_levels(_decoded(a.audio, a.val_shard, None),
                           _decoded(dirs[a.val_shard][key], idx_file(dirs[a.val_shard][key]), None))
        result["features"][key]["band_db"] = tilt
        print(f"{r:5g} " + " ".join(f"{v:+5.2f}" for v in tilt))
    std = np.asarray(result["features"][f"opus{rates[0]:g}"]["ceps_std"])
    print(f"(original feature std: c0 {std[0]:.3f}, c1-17 rms {np.sqrt(np.mean(std[1:] ** 2)):.3f}, "
          f"corr {result['features'][f'opus{rates[0]:g}']['corr_std']:.3f})")

    # (c) validation loss
    if a.ckpt:
        print(f"\n(c) validation cross-entropy ({a.features}, copy 0, seed 0), original vs Opus-decoded audio",
              flush=True)
        data = {}
        src = {"flac": (a.audio, None)} | {f"opus{r:g}": (dirs[a.val_shard][f"opus{r:g}"], r) for r in loss_rates}
        if not a.no_dither_reference:
            src["dither"] = (dirs[a.val_shard]["dither"], None)
        for key, (adir, _) in src.items():
            out = work / f"ex-{key}"
            build_examples(adir, out, ["validation"], copies=1, seed=0, target_mib=a.loss_mib or 12.0, workers=1,
                           progress=False, limit=1 if a.loss_mib else None)
            data[key] = out
        losses = val_losses(a.ckpt, data, a.features, a.batch)
        result["loss"] = losses
        cols = [k for k in src if k != "flac"]
        print(f"{'checkpoint':32s} {'FLAC':>8s} " + " ".join(f"{c:>16s}" for c in cols))
        for name, row in losses.items():
            base = row["flac"]
            cells = [f"{row[c]:8.4f} {100 * (row[c] / base - 1):+6.2f}%" for c in cols]
            print(f"{name:32s} {base:8.4f} " + " ".join(f"{c:>16s}" for c in cells))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def band_levels(ref: dict, test: dict) -> list[float]:
    """Power of ``test`` relative to ``ref`` (dB) in 1 kHz bands, over all utterances (Welch PSD)."""
    from scipy.signal import welch

    x = np.concatenate([ref[u] for u in ref])
    y = np.concatenate([test[u] for u in ref])
    f, px = welch(x, 16000, nperseg=512)
    _, py = welch(y, 16000, nperseg=512)
    return [float(10 * np.log10(py[(f >= k) & (f < k + 1000)].sum() / px[(f >= k) & (f < k + 1000)].sum()))
            for k in range(0, 8000, 1000)]


def idx_file(d: Path) -> str:
    from pnsc.training.corpus.shards import load_index

    return load_index(d)["shards"][0]["file"]


if __name__ == "__main__":
    raise SystemExit(main())
