"""scripts/gpu.sh examples: the carried audio slices become example shards, all builds at once, each built once;
a broken slice fails the step (it used to pass unnoticed and leave training without that data)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tqdm", reason="training extra (tqdm) not installed")

from pnsc.shared.audio import load_audio  # noqa: E402
from pnsc.training.corpus.audio_codec import encode_member  # noqa: E402
from pnsc.training.corpus.shards import _write_index, load_index, write_shard_tar  # noqa: E402
from pnsc.training.corpus.transcode import transcode_shards  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GPU_SH = REPO / "scripts" / "gpu.sh"


@pytest.fixture(scope="module")
def flac_dir(tmp_path_factory) -> Path:
    """Two train shards and one validation shard of the bundled real speech (2 s per clip)."""
    d = tmp_path_factory.mktemp("flac")
    clips = []
    for p in sorted((REPO / "samples").glob("*.flac"))[:5]:
        x = load_audio(p, quiet=True)[:32000]
        clips.append((p.stem, np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)))
    plan = {"audio-train-00000.tar": ("train", clips[:2]), "audio-train-00001.tar": ("train", clips[2:4]),
            "audio-validation-00000.tar": ("validation", clips[4:])}
    entries = []
    for file, (split, part) in plan.items():
        records = [{"utt": u, "speaker": u.split("-")[0], "source": "librispeech", "real": True, "split": split,
                    "samples": len(pcm), "member": f"{u}.flac"} for u, pcm in part]
        members = [(f"{u}.flac", encode_member(pcm, "flac")) for u, pcm in part]
        entries.append({"file": file, "split": split, "plan_sha256": "-", **write_shard_tar(d / file, records, members)})
    _write_index(d, {"version": 1, "kind": "audio", "seed": 0, "complete": True, "shards": entries})
    return d


def _carry(flac_dir: Path, root: Path) -> Path:
    """A .carry folder as a device call brings it: validation speakers and two Opus slices of the train split."""
    for name, files in (("val", ["audio-validation-00000.tar"]), ("tg0p1", ["audio-train-00000.tar"]),
                        ("tg0p2", ["audio-train-00001.tar"])):
        transcode_shards(flac_dir, files, root / name, "opus", 64.0, 5.0, progress=False)
    return root


def _examples(carry: Path, ex: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CARRY_ROOT": str(carry), "EX_ROOT": str(ex), "PY": sys.executable, "COPIES": "1"}
    return subprocess.run(["bash", str(GPU_SH), "examples"], capture_output=True, text=True, env=env, timeout=600)


def test_every_carried_slice_is_built_once(flac_dir, tmp_path):
    carry, ex = _carry(flac_dir, tmp_path / "carry"), tmp_path / "ex"
    r = _examples(carry, ex)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("val", "tg0p1", "tg0p2"):
        index = load_index(ex / name)
        assert index["complete"] and index["sequences"] > 0, name
        assert f"examples {ex / name}:" in r.stdout and "rc 0" in r.stdout
    # a warm machine's next call: nothing new, nothing rebuilt
    before = {p: p.stat().st_mtime_ns for p in ex.rglob("*.tar")}
    r = _examples(carry, ex)
    assert r.returncode == 0 and "examples: all built" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in ex.rglob("*.tar")} == before


def test_a_broken_slice_fails_the_step(flac_dir, tmp_path):
    carry, ex = _carry(flac_dir, tmp_path / "carry"), tmp_path / "ex"
    shard = next((carry / "tg0p2").glob("*.tar"))
    shard.write_bytes(b"not a tar file" * 100)
    r = _examples(carry, ex)
    assert r.returncode == 1 and "a build failed" in r.stdout
    assert load_index(ex / "tg0p1")["complete"]  # the good slices are built all the same
    assert (ex / "tg0p2.log").is_file()


def _examples_env(carry: Path, ex: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "CARRY_ROOT": str(carry), "EX_ROOT": str(ex), "PY": sys.executable, "COPIES": "1", **env}
    return subprocess.run(["bash", str(GPU_SH), "examples"], capture_output=True, text=True, env=full, timeout=600)


def _shards(d: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in d.glob("*.tar")}


def test_a_new_seed_rebuilds_the_training_slices_not_the_validation_set(flac_dir, tmp_path):
    carry, ex = _carry(flac_dir, tmp_path / "carry"), tmp_path / "ex"
    assert _examples_env(carry, ex).returncode == 0
    seed0 = {n: load_index(ex / n) for n in ("tg0p1", "tg0p2")}
    val = _shards(ex / "val")
    r = _examples_env(carry, ex, EX_SEED="1")
    assert r.returncode == 0, r.stdout + r.stderr
    for n in ("tg0p1", "tg0p2"):
        index = load_index(ex / n)
        assert index["complete"] and index["seed"] == 1
        assert {e["sha256"] for e in index["shards"]}.isdisjoint({e["sha256"] for e in seed0[n]["shards"]})
    assert load_index(ex / "val")["seed"] == 0 and _shards(ex / "val") == val
    r = _examples_env(carry, ex, EX_SEED="1")
    assert r.returncode == 0 and "examples: all built (seed 1)" in r.stdout


def test_what_the_previous_call_prebuilt_takes_the_slices_place(flac_dir, tmp_path):
    """EX_NEXT's build (seed N+1, training slices only, in data/ex.next) replaces the slices of the next call with
    EX_SEED=N+1 without building them again; a slice the previous call left half built is finished."""
    import json

    carry, ex, nxt = _carry(flac_dir, tmp_path / "carry"), tmp_path / "ex", tmp_path / "ex.next"
    assert _examples_env(carry, ex).returncode == 0
    r = _examples_env(carry, nxt, EX_SEED="1", EX_TRAIN_ONLY="1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (nxt / "val").exists()  # the validation set is never rebuilt
    # the previous call ended while tg0p2 was being built: its index lists one shard fewer, not complete
    idx = json.loads((nxt / "tg0p2" / "index.json").read_text())
    dropped = idx["shards"].pop()["file"]
    idx["complete"] = False
    (nxt / "tg0p2" / "index.json").write_text(json.dumps(idx))
    prebuilt = _shards(nxt / "tg0p1")
    r = _examples_env(carry, ex, EX_SEED="1", EX_NEXT_ROOT=str(nxt))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"examples: {ex / 'tg0p1'} prebuilt with seed 1 by the previous call\n" in r.stdout
    assert f"examples: {ex / 'tg0p2'} prebuilt with seed 1 by the previous call (in part: finished now)" in r.stdout
    assert _shards(ex / "tg0p1") == prebuilt  # taken as built, not rebuilt
    assert not (nxt / "tg0p1").exists() and not (nxt / "tg0p2").exists()
    for n in ("tg0p1", "tg0p2"):
        index = load_index(ex / n)
        assert index["complete"] and index["seed"] == 1, n
    assert dropped in {e["file"] for e in load_index(ex / "tg0p2")["shards"]}
    # a prebuilt slice of another seed is left alone
    assert _examples_env(carry, nxt, EX_SEED="3", EX_TRAIN_ONLY="1").returncode == 0
    r = _examples_env(carry, ex, EX_SEED="2", EX_NEXT_ROOT=str(nxt))
    assert r.returncode == 0 and "prebuilt" not in r.stdout
    assert load_index(ex / "tg0p1")["seed"] == 2 and load_index(nxt / "tg0p1")["seed"] == 3
