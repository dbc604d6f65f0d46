"""Driver for the synthetic sources: probe candidates, keep separable ones, then fill round-robin.

Resumable: every utterance is a pure function of (speaker spec, index) and files that exist are kept,
so a killed build continues where it stopped. Round-robin filling keeps speakers balanced whenever the
time budget ends the run.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from pnsc.shared.audio import load_audio

from .distinct import embedding, select_separable
from .sources.common import utterance_path, write_flac

CHAPTER = "0000"


def _synth(source: str, threads: int):
    if source == "piper":
        from .sources import piper as mod

        return mod, mod.PiperSynth(threads)
    if source == "kokoro":
        from .sources import kokoro as mod

        return mod, mod.KokoroSynth(threads)
    raise ValueError(f"unknown synthetic source {source!r} (piper, kokoro)")


def _make(synth, mod, out_root: Path, spec: dict, index: int) -> float:
    path = utterance_path(out_root, mod.SUBSET, spec["speaker"], CHAPTER, index)
    if path.exists():
        import soundfile as sf

        return sf.info(str(path)).duration
    audio, _ = synth.utterance(spec, index)
    write_flac(path, audio)
    return len(audio) / 16000.0


def write_transcripts(out_root: Path, subset: str, spec: dict) -> None:
    from .textgen import utterance_text

    spk_dir = Path(out_root) / subset / spec["speaker"] / CHAPTER
    files = sorted(spk_dir.glob("*.flac"))
    lines = [f"{p.stem} {utterance_text(spec['speaker'], int(p.stem.split('-')[-1])).upper()}" for p in files]
    (spk_dir / f"{spec['speaker']}-{CHAPTER}.trans.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(source: str, out_root: Path, budget_s: float, minutes_per_speaker: float, probe: int = 4,
             min_accuracy: float = 0.75, threads: int = 1, log=print) -> dict:
    """Generate one synthetic source under ``out_root/<subset>/``; returns its summary dict."""
    out_root = Path(out_root)
    mod, synth = _synth(source, threads)
    specs = {s["speaker"]: s for s in mod.candidates()}
    subset_dir = out_root / mod.SUBSET
    subset_dir.mkdir(parents=True, exist_ok=True)
    state_path = subset_dir / "distinct.json"
    t0 = time.monotonic()
    if state_path.exists():
        state = json.loads(state_path.read_text())
    else:
        for k in range(probe):  # phase 1: a few utterances per candidate
            for spec in specs.values():
                _make(synth, mod, out_root, spec, k)
        embs = {}
        for spk in specs:
            embs[spk] = np.stack([embedding(load_audio(utterance_path(out_root, mod.SUBSET, spk, CHAPTER, k),
                                                       quiet=True)) for k in range(probe)])
        kept, report = select_separable(embs, min_accuracy)
        state = {"source": source, "method": "nearest-centroid LOO on MFCC mean/std embeddings",
                 "min_accuracy": min_accuracy, "probe_utterances": probe, "kept": kept, "report": report,
                 "specs": list(specs.values())}
        state_path.write_text(json.dumps(state, indent=1))
        for spk in specs:
            if spk not in kept:
                shutil.rmtree(subset_dir / spk, ignore_errors=True)
        log(f"{source}: {len(kept)}/{len(specs)} candidates separable")
    kept = state["kept"]
    seconds = {spk: 0.0 for spk in kept}
    index = {spk: 0 for spk in kept}
    target = minutes_per_speaker * 60.0
    while time.monotonic() - t0 < budget_s:  # phase 2: round-robin filling
        active = [s for s in kept if seconds[s] < target]
        if not active:
            break
        for spk in active:
            seconds[spk] += _make(synth, mod, out_root, specs[spk], index[spk])
            index[spk] += 1
            if time.monotonic() - t0 >= budget_s:
                break
        done = sum(seconds.values()) / 60
        log(f"{source}: {done:.1f} min in {time.monotonic() - t0:.0f} s")
    for spk in kept:
        write_transcripts(out_root, mod.SUBSET, specs[spk])
    return {"source": source, "speakers": len(kept), "minutes": sum(seconds.values()) / 60.0,
            "seconds_taken": time.monotonic() - t0}
