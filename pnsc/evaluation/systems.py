"""pnsc as a system under test: encode to 1.6 kb/s packets, dequantize, decode with a decoder family.

Decoding is pluggable (:class:`DecoderBackend`): ``reference`` is the slow onnxruntime reference
decoder (``pnsc.receiver.reference_decoder``, about real time per decoder on one core); ``runtime``
is the C streaming decoder ``pnsc.receiver.runtime.StreamingDecoder`` when it is built; ``auto``
takes the runtime when it imports, else the reference decoder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pnsc.shared.constants import BITRATE

from .errors import EvalError

FAMILIES = ("plpcnet-s", "plpcnet-l", "lpcnet-bl-s", "lpcnet-bl-l")
BASELINE_OF = {"plpcnet-s": "lpcnet-bl-s", "plpcnet-l": "lpcnet-bl-l"}


def encode(pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16 kHz float audio -> (packets uint8 (k, 8), dequantized features (4k, 20)) at 1600 b/s."""
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import PacketDecoder, PacketEncoder, load_codebooks

    cb = load_codebooks()
    packets = PacketEncoder(cb).encode(extract_features(pcm))
    return packets, PacketDecoder(cb).decode(packets)


class DecoderBackend(Protocol):
    name: str

    def decode(self, family: str, group: int | None, features: np.ndarray, seed: int = 0) -> np.ndarray:
        """Dequantized features (T, 20) -> int16 16 kHz PCM."""


class ReferenceBackend:
    """onnxruntime reference decoder (one session pair per decoder, cached)."""

    name = "reference"

    def __init__(self, models_dir: str | Path | None = None):
        self.models_dir = models_dir
        self._cache: dict = {}

    def decode(self, family: str, group: int | None, features: np.ndarray, seed: int = 0) -> np.ndarray:
        from pnsc.receiver.reference_decoder import DecoderNotFound, ReferenceDecoder

        key = (family, group)
        if key not in self._cache:
            try:
                self._cache[key] = ReferenceDecoder.from_manifest(family, group, self.models_dir)
            except DecoderNotFound as exc:
                raise EvalError(str(exc)) from None
        return self._cache[key].decode(features, seed=seed)


class RuntimeBackend:
    """The C streaming decoder (``pnsc.receiver.runtime``): frames pushed one by one, then ``flush``;
    one decoder per (family, group), reset before every utterance."""

    name = "runtime"

    def __init__(self, precision: str | None = None, models_dir: str | Path | None = None,
                 postfilter: tuple[float, float, float] | None = None,
                 quiet_floor: tuple[float, float, float] | None = None):
        from pnsc.receiver.runtime import StreamingDecoder  # noqa: F401  (fails early if not built)

        self.precision = precision
        self.models_dir = models_dir
        self.postfilter = postfilter  # (g_n, g_d, mu) of a formant postfilter on every decoder, or None
        self.quiet_floor = None  # a larger sampling floor in quiet frames, from (floor, quiet_c0, loud_c0)
        if quiet_floor is not None:
            from pnsc.receiver.quiet_floor import QuietFloor

            self.quiet_floor = QuietFloor(*quiet_floor)
        self._cache: dict = {}
        self.kernel = ""

    def decode(self, family: str, group: int | None, features: np.ndarray, seed: int = 0) -> np.ndarray:
        from pnsc.receiver.runtime import StreamingDecoder

        key = (family, group)
        if key not in self._cache:
            kw = {"seed": seed, "models_dir": self.models_dir}
            if self.precision:
                kw["precision"] = self.precision
            if self.postfilter is not None:
                from pnsc.receiver.postfilter import FormantPostfilter

                kw["postfilter"] = FormantPostfilter(*self.postfilter)
            try:
                self._cache[key] = StreamingDecoder(family, group, **kw)
            except Exception as exc:  # a missing model or an unbuilt extension: one clear line
                raise EvalError(f"runtime decoder {family}/{group}: {exc}") from None
        dec = self._cache[key]
        self.kernel = f"{dec.kernel}, {dec.precision}"
        dec.seed = seed
        dec.reset()
        if self.quiet_floor is not None:
            from pnsc.receiver.quiet_floor import decode_with_floor

            feats = np.asarray(features, np.float32)
            return np.asarray(decode_with_floor(dec, feats, self.quiet_floor.floors(feats)), np.int16)
        out = [np.asarray(dec.push(f), np.int16) for f in np.asarray(features, np.float32)]
        out.append(np.asarray(dec.flush(), np.int16))
        return np.concatenate(out)


def runtime_available() -> tuple[bool, str]:
    try:
        from pnsc.receiver.runtime import StreamingDecoder  # noqa: F401
    except Exception as exc:  # ImportError, or the extension failing to load
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


def make_backend(kind: str = "auto", models_dir: str | Path | None = None,
                 precision: str | None = None,
                 postfilter: tuple[float, float, float] | None = None,
                 quiet_floor: tuple[float, float, float] | None = None) -> DecoderBackend:
    """``reference``, ``runtime`` or ``auto`` (runtime if it imports, else reference)."""
    if kind not in ("auto", "reference", "runtime"):
        raise EvalError(f"unknown decoder backend {kind!r} (auto, reference, runtime)")
    if kind in ("auto", "runtime"):
        ok, why = runtime_available()
        if ok:
            return RuntimeBackend(precision, models_dir, postfilter, quiet_floor)
        if kind == "runtime":
            raise EvalError(f"the C runtime decoder is not available ({why}); use --backend reference")
    if postfilter is not None or quiet_floor is not None:
        raise EvalError("a postfilter or quiet floor needs the C runtime decoder (the reference backend has none)")
    return ReferenceBackend(models_dir)


@dataclass(frozen=True)
class PnscSystem:
    """A decoder family; personalized families use the utterance's group (classified or forced)."""

    family: str

    @property
    def name(self) -> str:
        return self.family

    @property
    def personalized(self) -> bool:
        return self.family.startswith("plpcnet")

    @property
    def bitrate(self) -> float:
        return float(BITRATE)

    def decoder_for(self, group: int | None) -> tuple[str, int | None]:
        """(family, group) actually used: a personalized family without a group falls back to its baseline."""
        if not self.personalized:
            return self.family, None
        if group is None:
            return BASELINE_OF[self.family], None
        return self.family, int(group)


def manifest_decoders(models_dir: str | Path | None = None) -> list[dict]:
    """The decoder entries of ``models/manifest.json`` (of ``models_dir``, else the package's), in its order."""
    from pnsc.receiver.reference_decoder import read_decoders
    from pnsc.shared.paths import models_dir as default_dir

    return read_decoders(Path(models_dir) if models_dir else default_dir())


def latest_note(note: str | None) -> str:
    """The newest round's verdict from a manifest ``training_note`` ("round 29 (2026-11-28): shipped. Its ...
    round 27 ...": "round 29 (2026-11-28): shipped."): the round label and its first sentence."""
    note = (note or "").strip()
    label, sep, rest = note.partition("): ")
    if not sep or not label.startswith("round "):
        label, rest = "", note
    else:
        label += ")"
    end = rest.find(". ")
    first = rest if end < 0 else rest[:end + 1]
    return f"{label}: {first}" if label else first


def decoder_training(models_dir: str | Path | None = None) -> list[dict]:
    """What each decoder in ``models/manifest.json`` was trained on, for the report: name, family, group, how the
    slot is filled (its own fine-tune, or a baseline serving it), the round whose release its files are from (a
    serving baseline's for a fallback slot), audio-hours seen, GPU-minutes of its own, step, the newest round's
    verdict and the ONNX file's sha256 prefix, in the manifest's order."""
    entries = manifest_decoders(models_dir)
    released = {m.get("name"): m.get("released") for m in entries}
    rows = []
    for m in entries:
        sha = m.get("sha256")
        sample_sha = sha.get("sample") if isinstance(sha, dict) else sha
        rows.append({"name": m.get("name"), "family": m.get("family"), "group": m.get("group"),
                     "variant": m.get("variant"), "serves_as": m.get("serves_as"),
                     "released": m.get("released") or released.get(m.get("serves_as")),
                     "audio_hours_seen": m.get("audio_hours_seen"), "gpu_minutes_own": m.get("gpu_minutes_own"),
                     "step": m.get("step"), "latest": latest_note(m.get("training_note")),
                     "sha256": (sample_sha or "")[:12] or None})
    # S before L, each family's baseline before its group slots
    rows.sort(key=lambda r: (str(r["family"])[-1:] != "s", str(r["family"]).startswith("plpcnet"),
                             r["group"] if isinstance(r["group"], int) else -1, str(r["name"])))
    return rows


def decoder_params(models_dir: str | Path | None = None) -> dict[str, int]:
    """Parameter count per decoder family from ``models/manifest.json``."""
    out: dict[str, int] = {}
    for m in manifest_decoders(models_dir):
        if m.get("params") and m.get("family") not in out:
            out[m["family"]] = int(m["params"])
    return out
