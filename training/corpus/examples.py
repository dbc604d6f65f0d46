"""Training examples for LPCNet teacher forcing, built from audio shards (``shards.py``).

Example shard format (``examples-NNNNN.npz``, read by ``training/lpcnet/data.py``)
-----------------------------------------------------------------------------------
Sequences of ``T`` frames (default 15 = 2400 samples) are cut from whole utterances; features are
computed on the whole augmented utterance (``shared.features.extract_features``), then cut. With
frame ``i`` covering samples ``[160 i, 160 (i+1))`` and a sequence starting at frame ``f0``:

- ``features``  float16 ``(N, T+4, 20)``: unquantized features of frames ``f0-2 .. f0+T+1``
  (two frames of context each side for the frame-rate convolutions);
- ``qfeatures`` float16 ``(N, T+4, 20)``: the same frames after ``shared.quantizer.quantize_features``
  (1.6 kb/s encode + decode of the whole utterance);
- ``lpc``       float32 ``(N, T, 16)``: ``lpc_from_cepstrum(qfeatures[..., :18])`` for frames
  ``f0 .. f0+T-1`` (what the decoder uses);
- ``signal``    int16 ``(N, (T+1)*160)``: the pre-emphasized (0.85) augmented signal in int16 scale,
  samples ``160 (f0-1) .. 160 (f0+T) - 1`` (one frame of history before ``f0``);
- ``speaker``   int32 ``(N,)``: index into ``speakers`` (str array, the shard's speaker ids);
- ``meta``      0-d str array, JSON: format version, T, seed, copy, split, augmentation settings,
  source audio shard, sha256 of the codebook file used for ``qfeatures``.

Sequence starts: ``f0 = 2 + o + k T`` (``o`` random in ``[0, T)`` per utterance copy) while
``f0 + T + 2 <= frames``; utterances too short for one sequence are skipped.

Augmentations (seeded per (seed, utterance, copy), LPCNet's recipe):
- rate warp on copies ``>= 1`` with probability ``warp_prob``: resample by a factor in [0.9, 1.1]
  (pitch and formants move together, a new "speaker");
- random spectral shaping: ``H(z) = (1 + b1 z^-1 + b2 z^-2) / (1 + a1 z^-1 + a2 z^-2)``, each
  coefficient uniform in [-3/8, 3/8] (LPCNet's ``rand_resp``; always stable);
- random gain in [-20, +3] dB, lowered when needed so neither the signal nor its pre-emphasized version
  clips in int16.
Noise injection in the mu-law domain is NOT baked in: the trainer draws fresh noise for every batch
(``training/lpcnet/noise.py``), so each epoch sees different noise.

Shards are deterministic byte for byte (fixed zip timestamps), each under 60 MiB, with sha256 in
``index.json``; a rebuild skips shards whose job and checksum match (resumable); jobs run in a process
pool (``workers``) with a tqdm progress bar.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from pnsc.shared.constants import FEATURE_DIM, FRAME_CONTEXT as CONTEXT, FRAME_SIZE as FRAME, LPC_ORDER, SAMPLE_RATE

from ..affinity import use_all_cpus
from .shards import HARD_LIMIT, ShardError, iter_shard_audio, load_index, sha256_file

FORMAT_VERSION = 1
SEQ_FRAMES = 15
WARP_RANGE = (0.9, 1.1)
GAIN_DB = (-20.0, 3.0)
FILTER_RANGE = 3.0 / 8.0
PEAK = 32000.0


def bytes_per_sequence(T: int = SEQ_FRAMES) -> int:
    return (T + 2 * CONTEXT) * FEATURE_DIM * 2 * 2 + T * LPC_ORDER * 4 + (T + 1) * FRAME * 2 + 4


def _rng(seed: int, utt: str, copy: int) -> np.random.Generator:
    h = int.from_bytes(hashlib.sha256(f"{seed}:{utt}:{copy}".encode()).digest()[:8], "little")
    return np.random.default_rng(h)


def augment(audio: np.ndarray, rng: np.random.Generator, copy: int, warp_prob: float = 0.7) -> tuple[np.ndarray, dict]:
    """Return (augmented float32 signal in [-1, 1], parameters). Copy 0 is never warped."""
    from scipy.signal import lfilter

    from .sources.common import warp_to_16k

    x = np.asarray(audio, np.float64)
    params: dict = {"warp": 1.0}
    if copy > 0 and rng.random() < warp_prob:
        w = float(rng.uniform(*WARP_RANGE))
        x = warp_to_16k(x, SAMPLE_RATE, w).astype(np.float64)
        params["warp"] = round(w, 4)
    coef = rng.uniform(-FILTER_RANGE, FILTER_RANGE, size=4)
    x = lfilter([1.0, coef[0], coef[1]], [1.0, coef[2], coef[3]], x)
    params["filter"] = [round(float(c), 4) for c in coef]
    gain_db = float(rng.uniform(*GAIN_DB))
    g = 10.0 ** (gain_db / 20.0)
    peak = max(np.max(np.abs(x)) if x.size else 0.0,
               np.max(np.abs(x[1:] - 0.85 * x[:-1])) if x.size > 1 else 0.0) * 32768.0
    if peak * g > PEAK:
        g = PEAK / peak
    params["gain_db"] = round(20 * np.log10(g), 2) if g > 0 else -120.0
    return (x * g).astype(np.float32), params


def utterance_sequences(pcm: np.ndarray, rng: np.random.Generator, T: int = SEQ_FRAMES, codebooks=None) -> dict:
    """Cut one augmented utterance (float32 in [-1, 1]) into teacher-forcing sequences."""
    from pnsc.shared.dsp import preemphasize
    from pnsc.shared.features import extract_features
    from pnsc.shared.lpc import lpc_from_cepstrum
    from pnsc.shared.quantizer import quantize_features

    from pnsc.shared.constants import NB_CEPS

    feats = extract_features(pcm)
    n_frames = len(feats)
    offset = int(rng.integers(0, T))
    starts = list(range(CONTEXT + offset, n_frames - T - CONTEXT + 1, T))
    if not starts:
        return {}
    _, qfeats = quantize_features(feats, codebooks)
    x = np.zeros(n_frames * FRAME, np.float32)
    x[: len(pcm)] = pcm * 32768.0
    pre, _ = preemphasize(x, 0.0)
    pre = np.clip(np.round(pre), -32768, 32767).astype(np.int16)
    lpc = lpc_from_cepstrum(qfeats[:, :NB_CEPS])
    idx = np.asarray(starts)
    fr = idx[:, None] + np.arange(-CONTEXT, T + CONTEXT)[None, :]
    sig = (idx[:, None] - 1) * FRAME + np.arange((T + 1) * FRAME)[None, :]
    return {"features": feats[fr].astype(np.float16), "qfeatures": qfeats[fr].astype(np.float16),
            "lpc": lpc[idx[:, None] + np.arange(T)[None, :]].astype(np.float32), "signal": pre[sig]}


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An ``.npz`` (stored, no compression) with fixed timestamps: identical inputs give identical bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def plan_jobs(audio_dir: Path, splits: list[str], copies: int, target_bytes: int, T: int = SEQ_FRAMES) -> list[dict]:
    """Deterministic jobs: (audio shard, copy, utterance subset) sized so each output is < target."""
    index = load_index(audio_dir)
    from .shards import read_shard_header

    per_seq = bytes_per_sequence(T)
    jobs = []
    for shard in index["shards"]:
        if shard["split"] not in splits:
            continue
        records = read_shard_header(Path(audio_dir) / shard["file"])
        for copy in range(copies):
            part, est = [], 0
            for rec in records:
                # worst case: a 0.9 warp lengthens the utterance by 1/0.9
                n_seq = int(rec["samples"] / WARP_RANGE[0] / FRAME / T) + 1
                if part and est + n_seq * per_seq > target_bytes:
                    jobs.append({"audio_shard": shard["file"], "audio_sha256": shard["sha256"], "copy": copy,
                                 "split": shard["split"], "utts": part})
                    part, est = [], 0
                part.append(rec["utt"])
                est += n_seq * per_seq
            if part:
                jobs.append({"audio_shard": shard["file"], "audio_sha256": shard["sha256"], "copy": copy,
                             "split": shard["split"], "utts": part})
    for k, job in enumerate(jobs):
        job["file"] = f"examples-{k:05d}.npz"
        job["key"] = hashlib.sha256(json.dumps([job["audio_sha256"], job["copy"], job["utts"]]).encode()).hexdigest()
    return jobs


def run_job(job: dict, audio_dir: str, out_dir: str, seed: int, T: int, warp_prob: float,
            codebooks_path: str | None) -> dict:
    """Build one example shard (runs in a worker process)."""
    from pnsc.shared.paths import models_dir
    from pnsc.shared.quantizer import CODEBOOK_FILE, load_codebooks

    cb = load_codebooks(codebooks_path)
    cb_sha = sha256_file(Path(codebooks_path) if codebooks_path else models_dir() / CODEBOOK_FILE)
    parts: dict[str, list] = {k: [] for k in ("features", "qfeatures", "lpc", "signal")}
    spk_index: dict[str, int] = {}
    speaker_ids: list[np.ndarray] = []
    seconds = 0.0
    warps = []
    for rec, audio in iter_shard_audio(Path(audio_dir) / job["audio_shard"], set(job["utts"])):
        rng = _rng(seed, rec["utt"], job["copy"])
        pcm, params = augment(audio, rng, job["copy"], warp_prob)
        seqs = utterance_sequences(pcm, rng, T, cb)
        if not seqs:
            continue
        for k in parts:
            parts[k].append(seqs[k])
        n = len(seqs["signal"])
        spk = spk_index.setdefault(rec["speaker"], len(spk_index))
        speaker_ids.append(np.full(n, spk, np.int32))
        seconds += n * T * FRAME / SAMPLE_RATE
        warps.append(params["warp"])
    if not speaker_ids:
        empty = {"features": np.zeros((0, T + 2 * CONTEXT, FEATURE_DIM), np.float16),
                 "qfeatures": np.zeros((0, T + 2 * CONTEXT, FEATURE_DIM), np.float16),
                 "lpc": np.zeros((0, T, LPC_ORDER), np.float32), "signal": np.zeros((0, (T + 1) * FRAME), np.int16)}
        arrays = {**empty, "speaker": np.zeros(0, np.int32)}
    else:
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        arrays["speaker"] = np.concatenate(speaker_ids)
    arrays["speakers"] = np.array(sorted(spk_index, key=spk_index.get) or [""], dtype=str)[: len(spk_index)]
    meta = {"format": FORMAT_VERSION, "T": T, "seed": seed, "copy": job["copy"], "split": job["split"],
            "audio_shard": job["audio_shard"], "warp_prob": warp_prob if job["copy"] > 0 else 0.0,
            "warp_range": WARP_RANGE, "gain_db": GAIN_DB, "filter_range": FILTER_RANGE,
            "warped_utterances": sum(w != 1.0 for w in warps), "utterances": len(warps),
            "noise": "mu-law noise is injected on the fly by the trainer (training/lpcnet/noise.py)",
            "codebooks_sha256": cb_sha}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    data = _npz_bytes(arrays)
    if len(data) >= HARD_LIMIT:
        raise ShardError(f"{job['file']}: {len(data)} bytes exceeds the {HARD_LIMIT} byte limit")
    path = Path(out_dir) / job["file"]
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return {"file": job["file"], "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "sequences": int(len(arrays["speaker"])), "seconds": round(seconds, 2), "split": job["split"],
            "audio_shard": job["audio_shard"], "copy": job["copy"], "key": job["key"],
            "speakers": int(len(spk_index))}


def _run_job_star(args):
    return run_job(*args)


def build_examples(audio_dir: Path, out_dir: Path, splits: list[str], copies: int = 3, seed: int = 0,
                   T: int = SEQ_FRAMES, target_mib: float = 48.0, warp_prob: float = 0.7, workers: int = 1,
                   codebooks_path: str | None = None, progress: bool = True, limit: int | None = None) -> dict:
    """Build (or resume) the example shards for ``splits`` from the audio shards in ``audio_dir``."""
    from tqdm import tqdm

    from pnsc.shared.quantizer import load_codebooks

    load_codebooks(codebooks_path)  # fail early and clearly if the codebooks are missing
    audio_dir, out_dir = Path(audio_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if target_mib * 2**20 >= HARD_LIMIT:
        raise ShardError(f"target {target_mib} MiB must stay below {HARD_LIMIT / 2**20:.0f} MiB")
    jobs = plan_jobs(audio_dir, splits, copies, int(target_mib * 2**20), T)
    if limit is not None:
        jobs = jobs[:limit]
    bad_audio = [j["audio_shard"] for j in jobs if not (audio_dir / j["audio_shard"]).is_file()]
    if bad_audio:
        raise ShardError(f"audio shards missing in {audio_dir}: {sorted(set(bad_audio))[:5]}")
    index_path = out_dir / "index.json"
    old = {}
    if index_path.is_file():
        try:
            prev_index = json.loads(index_path.read_text())
            # a shard's job key names its audio and copy, not the augmentation: shards of another seed,
            # warp probability or length are rebuilt (gpu.sh EX_SEED rebuilds a slice with a new seed in place)
            if (prev_index.get("seed"), prev_index.get("warp_prob"), prev_index.get("T")) == (seed, warp_prob, T):
                old = {e["file"]: e for e in prev_index["shards"]}
        except (json.JSONDecodeError, KeyError, AttributeError):
            old = {}
    done, todo = {}, []
    for job in jobs:
        prev = old.get(job["file"])
        path = out_dir / job["file"]
        if prev and prev["key"] == job["key"] and path.is_file() and sha256_file(path) == prev["sha256"]:
            done[job["file"]] = prev
        else:
            todo.append(job)
    settings = {"version": FORMAT_VERSION, "kind": "examples", "seed": seed, "copies": copies, "T": T,
                "splits": splits, "warp_prob": warp_prob, "target_bytes": int(target_mib * 2**20),
                "audio_index_sha256": sha256_file(audio_dir / "index.json")}

    def write_index(complete: bool):
        entries = [done[j["file"]] for j in jobs if j["file"] in done]
        data = {**settings, "complete": complete, "planned": len(jobs), "shards": entries,
                "sequences": sum(e["sequences"] for e in entries),
                "hours": round(sum(e["seconds"] for e in entries) / 3600, 3)}
        tmp = index_path.with_name("index.json.tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(index_path)

    args = [(job, str(audio_dir), str(out_dir), seed, T, warp_prob, codebooks_path) for job in todo]
    bar = tqdm(total=len(jobs), initial=len(done), desc="example shards", unit="shard", disable=not progress)
    if workers > 1 and len(args) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=use_all_cpus) as pool:
            for entry in pool.imap_unordered(_run_job_star, args):
                done[entry["file"]] = entry
                write_index(False)
                bar.update(1)
    else:
        for a in args:
            entry = run_job(*a)
            done[entry["file"]] = entry
            write_index(False)
            bar.update(1)
    bar.close()
    write_index(len(done) == len(jobs))
    return json.loads(index_path.read_text())


def load_examples(path: Path) -> dict[str, np.ndarray]:
    """Read one example shard into a dict of arrays (``meta`` decoded to a dict)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ShardError(f"corrupt or unreadable example shard {path}: {exc}") from exc
    out["meta"] = json.loads(str(out["meta"]))
    return out
