"""Reference (slow, offline) LPCNet decoder: onnxruntime + numpy only, no torch.

Runs a decoder exported by ``training.lpcnet.export``: the frame-rate graph once over the whole
feature sequence, then the 160-sample frame-loop graph frame by frame.  Sampling uses a seeded numpy
RNG, so a given (model, features, seed) always decodes to the same audio.  It runs at about real time
on one CPU core (S models; L about 1.3x real time), so it is meant for offline decoding and tests.

A model that produces NaN or infinite values (conditioning, GRU states or samples) is broken:
:class:`DecoderError` is raised, naming the model and the frame, instead of writing noise.

    dec = ReferenceDecoder.from_manifest("plpcnet-s", group=2)
    pcm16 = dec.decode(features)          # features (T, 20) dequantized -> int16 (T*160,)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pnsc.shared.checksum import sha256_file
from pnsc.shared.constants import (CORR_INDEX, FEATURE_DIM, FRAME_CONTEXT, FRAME_SIZE, LPC_ORDER, LTP_HISTORY, NB_CEPS,
                                   PDF_FLOOR, PERIOD_INDEX)

DECODER_FAMILIES = ("plpcnet-s", "plpcnet-l", "lpcnet-bl-s", "lpcnet-bl-l")


class DecoderNotFound(Exception):
    """No usable decoder: manifest, entry or model file missing, or a checksum mismatch."""


class DecoderError(Exception):
    """A decoder model misbehaved while decoding (non-finite values): the model is broken."""


def _session(src: Path | bytes, threads: int) -> ort.InferenceSession:
    """Session on a model file, or on a model's bytes."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(src if isinstance(src, bytes) else str(src), so, providers=["CPUExecutionProvider"])


def _sample_session(path: Path, threads: int, pdf_floor: float) -> ort.InferenceSession:
    """The loop graph sampling with ``pdf_floor`` (the file itself when its floor is that value)."""
    from pnsc.receiver.sampling import (GraphFloorError, check_pdf_floor, loop_graph_floor, loop_graph_with_floor,
                                        same_floor)

    pdf_floor = check_pdf_floor(pdf_floor)
    try:
        if same_floor(loop_graph_floor(path), pdf_floor):
            return _session(path, threads)
        return _session(loop_graph_with_floor(path, pdf_floor), threads)
    except GraphFloorError as exc:
        raise DecoderNotFound(str(exc)) from None



@dataclass
class DecoderEntry:
    name: str
    family: str
    group: int | None
    frame: Path
    sample: Path
    sha256: dict
    # a personalized slot served by a generic baseline's files (scripts/fallback_decoders.py): that baseline
    serves_as: str | None = None


def read_manifest(models_dir: Path) -> list[dict]:
    p = Path(models_dir) / "manifest.json"
    if not p.is_file():
        raise DecoderNotFound(f"no model manifest at {p}")
    obj = json.loads(p.read_text())
    return obj.get("models", []) if isinstance(obj, dict) else list(obj)


def read_decoders(models_dir: Path) -> list[dict]:
    """The manifest's decoder entries, in its order."""
    return [m for m in read_manifest(models_dir) if m.get("kind") == "decoder"]


def find_decoder(models_dir: Path, family: str, group: int | None) -> DecoderEntry:
    """The manifest entry of ``family`` (generic, or for ``group`` when personalized)."""
    models_dir = Path(models_dir)
    decoders = read_decoders(models_dir)
    entries = [m for m in decoders if m.get("family") == family]
    if family.startswith("plpcnet"):
        if group is None:
            raise DecoderNotFound(f"{family} needs a speaker group")
        entries = [m for m in entries if m.get("group") == group]
    if not entries:
        have = sorted({f"{m.get('family')}/{m.get('group')}" for m in decoders})
        raise DecoderNotFound(f"no decoder {family} for group {group} in {models_dir}/manifest.json (have {have})")
    m = entries[0]
    check_grouping(models_dir, m)
    files = {k: models_dir / v for k, v in m["files"].items()}
    for p in files.values():
        if not p.is_file():
            raise DecoderNotFound(f"decoder file missing: {p}")
    g = m.get("group")
    return DecoderEntry(m["name"], family, g if isinstance(g, int) else None, files["frame"], files["sample"],
                        m.get("sha256", {}), m.get("serves_as"))


GROUPS_FILE = "speaker_groups.json"  # the shipped classifier's centroids and grouping
TRAINING_GROUPS_FILE = "training_groups.json"  # that grouping extended to the non-LibriSpeech training speakers


def grouping_hashes(models_dir: Path) -> dict[str, str]:
    """The sha256 of the grouping files present in ``models_dir``, as personalized decoders' manifest entries
    record them (``classifier_groups_sha256`` is what ``check_grouping`` compares at load)."""
    files = (("classifier_groups_sha256", GROUPS_FILE), ("training_groups_sha256", TRAINING_GROUPS_FILE))
    return {key: sha256_file(Path(models_dir) / f) for key, f in files if (Path(models_dir) / f).is_file()}


def check_grouping(models_dir: Path, entry: dict) -> None:
    """A personalized decoder must have been trained with the grouping the shipped classifier uses:
    its manifest entry records the sha256 of ``speaker_groups.json`` it was trained against."""
    want = entry.get("classifier_groups_sha256")
    if entry.get("family", "").startswith("plpcnet") and want:
        path = Path(models_dir) / GROUPS_FILE
        have = sha256_file(path) if path.is_file() else None
        if have != want:
            raise DecoderNotFound(
                f"decoder {entry.get('name')} was trained for another speaker grouping than {path} "
                f"(sha256 {str(have)[:12]}... vs {want[:12]}... in the manifest): the sender's group would "
                f"pick the wrong decoder; retrain or re-export the personalized decoders for this grouping")


class ReferenceDecoder:
    """``pdf_floor``: the sampling's probability floor (``pnsc.receiver.sampling``; default ``PDF_FLOOR``,
    0 = plain softmax sampling), set in the loop graph it runs."""

    def __init__(self, frame_path: str | Path, sample_path: str | Path, *, seed: int = 0, threads: int = 1,
                 verify: dict | None = None, pdf_floor: float = PDF_FLOOR):
        frame_path, sample_path = Path(frame_path), Path(sample_path)
        if verify:
            for kind, p in (("frame", frame_path), ("sample", sample_path)):
                if verify.get(kind) and sha256_file(p) != verify[kind]:
                    raise DecoderNotFound(f"{p}: sha256 does not match the manifest")
        self.frame = _session(frame_path, threads)
        self.sample = _sample_session(sample_path, threads, pdf_floor)
        self.pdf_floor = float(pdf_floor)
        shapes = {i.name: i.shape for i in self.sample.get_inputs()}
        self.n_a = int(shapes["ha"][1])
        self.n_b = int(shapes["hb"][1])
        self.ltp = "past" in shapes  # an LTP decoder's loop graph (training.lpcnet.export)
        self.seed = seed
        self.name = sample_path.name.removesuffix(".onnx")

    @classmethod
    def from_manifest(cls, family: str, group: int | None = None, models_dir: str | Path | None = None, **kw):
        if models_dir is None:
            from pnsc.shared.paths import models_dir as _md

            models_dir = _md()
        e = find_decoder(Path(models_dir), family, group)
        dec = cls(e.frame, e.sample, verify=e.sha256, **kw)
        dec.entry = e
        dec.name = e.name
        return dec

    # -- pieces
    def conditioning(self, features: np.ndarray) -> np.ndarray:
        """features (T, 20) -> cond (T, C); edges padded by repeating the first / last frame."""
        f = np.asarray(features, np.float32)
        padded = np.concatenate([np.repeat(f[:1], FRAME_CONTEXT, 0), f, np.repeat(f[-1:], FRAME_CONTEXT, 0)])
        cond = self.frame.run(["cond"], {"features": padded[None]})[0][0]
        bad = ~np.isfinite(cond).all(axis=-1)
        if bad.any():
            raise DecoderError(f"decoder {self.name} is broken: its frame-rate network gave NaN/inf "
                               f"conditioning at frame {int(np.argmax(bad))}")
        return cond

    def synthesize(self, features: np.ndarray, lpc: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Pre-emphasized int16-scale float32 samples (T*160,), before de-emphasis."""
        features = np.asarray(features, np.float32)
        T = features.shape[0]
        if T == 0:
            return np.zeros(0, np.float32)
        cond = self.conditioning(features)
        rng = np.random.default_rng(self.seed if seed is None else seed)
        state = {"ha": np.zeros((1, self.n_a), np.float32), "hb": np.zeros((1, self.n_b), np.float32),
                 "hist": np.zeros(LPC_ORDER, np.float32), "exc": np.array([128], np.int64)}
        if self.ltp:  # LTP taps: the excitations drawn so far, and each frame's pitch period for its lag (a gated
            # decoder's graph applies its voicing gate from the frame's corr input itself)
            state["past"] = np.full(LTP_HISTORY, 128, np.int64)
        out = np.empty(T * FRAME_SIZE, np.float32)
        lpc = np.asarray(lpc, np.float32)
        for f in range(T):
            extra = {"period": features[f, PERIOD_INDEX:PERIOD_INDEX + 1]} if self.ltp else {}
            pcm, ha, hb, hist, exc, *past = self.sample.run(None, {
                "cond": cond[f:f + 1], "lpc": lpc[f], "corr": features[f, CORR_INDEX:CORR_INDEX + 1],
                "uniforms": rng.random(FRAME_SIZE, dtype=np.float32), **extra, **state})
            if not (np.isfinite(pcm).all() and np.isfinite(ha).all() and np.isfinite(hb).all()):
                raise DecoderError(f"decoder {self.name} is broken: NaN/inf in its samples or GRU state "
                                   f"at frame {f} of {T}")
            state = {"ha": ha, "hb": hb, "hist": hist, "exc": exc, **({"past": past[0]} if past else {})}
            out[f * FRAME_SIZE:(f + 1) * FRAME_SIZE] = pcm
        return out

    def decode(self, features: np.ndarray, seed: int | None = None) -> np.ndarray:
        """Dequantized features (T, 20) -> int16 PCM (T*160,) at 16 kHz (LPC from the cepstrum,
        synthesis, de-emphasis)."""
        from pnsc.shared.dsp import deemphasize
        from pnsc.shared.lpc import lpc_from_cepstrum

        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
            raise ValueError(f"features must be (T, {FEATURE_DIM}), got {features.shape}")
        if features.shape[0] == 0:
            return np.zeros(0, np.int16)
        if not np.isfinite(features).all():
            raise ValueError("features contain NaN or infinite values")
        lpc = lpc_from_cepstrum(features[:, :NB_CEPS])
        y = self.synthesize(features, lpc, seed)
        x, _ = deemphasize(y, 0.0)
        return np.clip(np.round(x), -32768, 32767).astype(np.int16)
