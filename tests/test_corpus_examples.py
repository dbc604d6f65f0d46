"""Example shards for LPCNet teacher forcing: layout, alignment, augmentation, determinism, resume, errors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tqdm", reason="training extra (tqdm) not installed")
sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from corpus_fixture import make_generated, make_librispeech, voice  # noqa: E402

from pnsc.training.corpus.examples import augment, build_examples, load_examples  # noqa: E402
from pnsc.training.corpus.manifest import build_manifest  # noqa: E402
from pnsc.training.corpus.shards import HARD_LIMIT, ShardError, build_audio_shards  # noqa: E402

T = 15


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Audio shards of the fixture corpus and a codebook file trained (k-means seeding only) on it."""
    from pnsc.shared.features import extract_features
    from pnsc.training.codebooks import train_codebooks

    base = tmp_path_factory.mktemp("ex")
    libri = make_librispeech(base / "libri", seconds=1.0)
    gen = make_generated(base / "gen", seconds=1.0)
    build_manifest(gen, libri, seed=0, n_val=2)
    build_audio_shards(gen / "manifest.json", base / "audio", target_mib=0.06, progress=False)
    feats = [extract_features(voice(100 + 30 * k, ((500 + 80 * k, 90), (1200, 80), (2500, 150)), 1.0, k))
             for k in range(4)]
    cb_path = base / "codebooks.npz"
    train_codebooks(feats, seed=0, iters=0).save(cb_path)
    return base, str(cb_path)


@pytest.fixture(scope="module")
def built(setup):
    base, cb = setup
    index = build_examples(base / "audio", base / "examples", ["train"], copies=2, seed=0, target_mib=0.3,
                           codebooks_path=cb, progress=False)
    return base / "examples", index


def test_shard_layout_and_sizes(built):
    out, index = built
    assert index["complete"] and len(index["shards"]) >= 2
    total = 0
    for entry in index["shards"]:
        path = out / entry["file"]
        assert path.stat().st_size == entry["bytes"] < HARD_LIMIT
        assert entry["bytes"] < 0.3 * 2**20 * 1.05
        ex = load_examples(path)
        n = entry["sequences"]
        total += n
        assert ex["features"].shape == (n, T + 4, 20) and ex["features"].dtype == np.float16
        assert ex["qfeatures"].shape == (n, T + 4, 20) and ex["qfeatures"].dtype == np.float16
        assert ex["lpc"].shape == (n, T, 16) and ex["lpc"].dtype == np.float32
        assert ex["signal"].shape == (n, (T + 1) * 160) and ex["signal"].dtype == np.int16
        assert ex["speaker"].dtype == np.int32 and ex["speaker"].max() < len(ex["speakers"])
        assert ex["meta"]["T"] == T and ex["meta"]["split"] == "train"
        assert np.all(np.isfinite(ex["features"].astype(np.float32)))
    assert total == index["sequences"] > 0
    speakers = {s for e in index["shards"] for s in load_examples(out / e["file"])["speakers"]}
    assert "201" not in speakers and "202" not in speakers  # test speakers never reach train examples


def test_features_signal_and_lpc_are_aligned(built):
    """Re-analysing a stored signal gives the stored features of the same frames (not of neighbours),
    and the stored LPC predicts the stored signal frame by frame."""
    from pnsc.shared.dsp import deemphasize
    from pnsc.shared.features import extract_features

    out, index = built
    ex = load_examples(out / index["shards"][0]["file"])
    errs = {0: [], 1: [], -1: []}
    for i in range(0, len(ex["signal"]), max(1, len(ex["signal"]) // 6)):
        x, _ = deemphasize(ex["signal"][i].astype(np.float64))
        again = extract_features(x.astype(np.float32) / 32768.0)  # frame k = stored frame index k + 1
        for shift in errs:
            k = np.arange(3, T)
            errs[shift].append(np.abs(again[k, :18] - ex["features"][i, k + 1 + shift, :18].astype(np.float32)).mean())
    assert np.mean(errs[0]) < 0.05
    assert np.mean(errs[0]) * 2 < min(np.mean(errs[1]), np.mean(errs[-1]))
    sig = ex["signal"].astype(np.float64)
    err = energy = 0.0
    for j in range(T):
        a = ex["lpc"][:, j].astype(np.float64)
        for n in range(160 * (j + 1), 160 * (j + 2)):
            pred = np.einsum("bm,bm->b", a, sig[:, n - 1:n - 17:-1])
            err += np.sum((sig[:, n] - pred) ** 2)
            energy += np.sum(sig[:, n] ** 2)
    assert 10 * np.log10(energy / err) > 10.0


def test_deterministic_resumable_and_seeded(setup, built, tmp_path):
    base, cb = setup
    out, index = built
    again = build_examples(base / "audio", tmp_path / "a", ["train"], copies=2, seed=0, target_mib=0.3,
                           codebooks_path=cb, progress=False)
    assert [e["sha256"] for e in again["shards"]] == [e["sha256"] for e in index["shards"]]
    first = tmp_path / "a" / again["shards"][0]["file"]
    mtime = first.stat().st_mtime_ns
    build_examples(base / "audio", tmp_path / "a", ["train"], copies=2, seed=0, target_mib=0.3,
                   codebooks_path=cb, progress=False)
    assert first.stat().st_mtime_ns == mtime  # resumed: nothing rebuilt
    other = build_examples(base / "audio", tmp_path / "b", ["train"], copies=2, seed=1, target_mib=0.3,
                           codebooks_path=cb, progress=False, limit=1)
    assert other["shards"][0]["sha256"] != index["shards"][0]["sha256"]
    pooled = build_examples(base / "audio", tmp_path / "c", ["train"], copies=2, seed=0, target_mib=0.3,
                            codebooks_path=cb, progress=False, workers=2, limit=2)
    assert [e["sha256"] for e in pooled["shards"]] == [e["sha256"] for e in index["shards"][:2]]


def test_a_new_seed_in_the_same_folder_rebuilds_every_shard(setup, built, tmp_path):
    """A shard's job key does not name the seed: building seed 1 where seed 0 was built must not keep seed 0's
    shards (gpu.sh EX_SEED rebuilds a slice in place with fresh augmentation)."""
    base, cb = setup
    out, index = built
    d = tmp_path / "s"
    build_examples(base / "audio", d, ["train"], copies=2, seed=0, target_mib=0.3, codebooks_path=cb, progress=False)
    reseeded = build_examples(base / "audio", d, ["train"], copies=2, seed=1, target_mib=0.3, codebooks_path=cb,
                              progress=False)
    assert reseeded["seed"] == 1 and reseeded["complete"]
    old = {e["file"]: e["sha256"] for e in index["shards"]}
    assert all(e["sha256"] != old[e["file"]] for e in reseeded["shards"])
    # and back: seed 0 again gives seed 0's shards, byte for byte
    back = build_examples(base / "audio", d, ["train"], copies=2, seed=0, target_mib=0.3, codebooks_path=cb,
                          progress=False)
    assert {e["file"]: e["sha256"] for e in back["shards"]} == old


def test_augmentation_ranges():
    x = voice(150, ((600, 90), (1200, 80), (2500, 150)), 1.0, 0) * 1.9  # near full scale
    warped = 0
    for k in range(20):
        rng = np.random.default_rng(k)
        y, p = augment(x, rng, copy=1, warp_prob=0.7)
        assert np.all(np.abs(p["filter"]) <= 0.375)
        assert p["gain_db"] <= 3.0
        assert np.max(np.abs(y)) * 32768 <= 32000.5
        pre = y[1:] - 0.85 * y[:-1]
        assert np.max(np.abs(pre)) * 32768 <= 32000.5
        if p["warp"] != 1.0:
            warped += 1
            assert 0.9 <= p["warp"] <= 1.1
            assert abs(len(y) - len(x) / p["warp"]) < 50
    assert 5 <= warped <= 19
    _, p0 = augment(x, np.random.default_rng(0), copy=0)
    assert p0["warp"] == 1.0  # copy 0 keeps the original rate


def test_errors_for_missing_or_corrupt_inputs(setup, tmp_path):
    base, cb = setup
    from pnsc.shared.quantizer import CodebookError

    with pytest.raises(CodebookError):
        build_examples(base / "audio", tmp_path / "x", ["train"], codebooks_path=str(tmp_path / "nope.npz"),
                       progress=False)
    with pytest.raises(ShardError, match="index not found"):
        build_examples(tmp_path, tmp_path / "x", ["train"], codebooks_path=cb, progress=False)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ShardError, match="corrupt"):
        load_examples(bad)
    import shutil

    audio = tmp_path / "audio"
    shutil.copytree(base / "audio", audio)
    victim = sorted(audio.glob("audio-train-*.tar"))[0]
    victim.write_bytes(victim.read_bytes()[:2048])
    with pytest.raises(ShardError, match="corrupt"):
        build_examples(audio, tmp_path / "y", ["train"], codebooks_path=cb, progress=False)
    index = json.loads((audio / "index.json").read_text())
    assert any(s["file"] == victim.name for s in index["shards"])
