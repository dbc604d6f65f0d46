"""Sender-side speaker-group classification (paper sec. 2.1 / 2.3), onnxruntime + numpy only.

* :class:`SpeakerEncoderRuntime` runs ``models/speaker_encoder.onnx`` on log-spectrum segments.
* :class:`SpeakerClassifier` turns audio into a group: active (VAD) frames from the start of the
  audio, 3 s segments, mean embedding, nearest centroid of ``models/speaker_groups.json``.
  ``classify`` uses whatever active speech there is (less than ``DECIDE_SECONDS`` is less reliable:
  callers warn) and refuses only audio without speech.
* :class:`GroupTracker` is the streaming decision used by a call: decide once enough active speech
  has been heard, then re-check every window and switch only after several consecutive windows
  disagree (hysteresis), so a talker change is followed without flapping.

Confidence: ``1 - d_best / d_second`` (relative margin between the nearest and the second nearest
centroid; 0 = tie, 1 = exactly on the centroid).
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pnsc.shared.audio import AudioError
from pnsc.shared.paths import models_dir

from . import speaker_frontend as fe

ENCODER_FILE = "speaker_encoder.onnx"
GROUPS_FILE = "speaker_groups.json"
SEGMENT_FRAMES = 300  # 3 s of active speech per embedding
MIN_ACTIVE_FRAMES = 150  # 1.5 s: shortest segment (a shorter tail joins the previous segment)
DEFAULT_ACTIVE_SECONDS = 6.0  # classify() uses up to this much active speech from the start
DECIDE_SECONDS = 3.0  # active speech the streaming tracker waits for; less gives a less reliable group


class SpeakerClassificationError(AudioError):
    """The audio cannot be classified (silence, noise only, or too little speech)."""


@dataclass(frozen=True)
class Classification:
    group: int
    distances: list[float]  # Euclidean distance to each centroid
    confidence: float  # 1 - d_best / d_second, in [0, 1]
    active_seconds: float  # active speech used
    segments: int  # number of embedded segments

    def to_dict(self) -> dict:
        return {"group": self.group, "distances": [round(d, 6) for d in self.distances],
                "confidence": round(self.confidence, 6), "active_seconds": round(self.active_seconds, 2),
                "segments": self.segments}


class SpeakerEncoderRuntime:
    """onnxruntime session of the speaker encoder: (T, 257) log spectra -> (32,) embedding."""

    def __init__(self, path: str | Path | None = None):
        import onnxruntime as ort

        path = Path(path) if path is not None else models_dir() / ENCODER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"speaker encoder model not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.path = path

    def embed(self, segment: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(segment, dtype=np.float32)[None]
        return self.session.run(None, {self.input_name: x})[0][0].astype(np.float64)

    def embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        if not segments:
            return np.zeros((0, 0))
        return np.stack([self.embed(s) for s in segments])


def load_groups(path: str | Path | None = None) -> dict:
    path = Path(path) if path is not None else models_dir() / GROUPS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"speaker groups file not found: {path}")
    data = json.loads(path.read_text())
    if "groupings" not in data or "default_groups" not in data:
        raise ValueError(f"{path}: not a speaker_groups.json (missing 'groupings')")
    return data


def nearest_centroid(z: np.ndarray, centroids: np.ndarray) -> tuple[int, np.ndarray, float]:
    d = np.sqrt(((centroids - z[None, :]) ** 2).sum(axis=1))
    order = np.argsort(d, kind="stable")
    best = int(order[0])
    if len(d) > 1 and d[order[1]] > 0:
        conf = float(1.0 - d[best] / d[order[1]])
    else:
        conf = 1.0
    return best, d, conf


class SpeakerClassifier:
    def __init__(self, groups: int | None = None, encoder_path: str | Path | None = None,
                 groups_path: str | Path | None = None):
        self.encoder = SpeakerEncoderRuntime(encoder_path)
        self.groups_data = load_groups(groups_path)
        c = int(groups if groups is not None else self.groups_data["default_groups"])
        if str(c) not in self.groups_data["groupings"]:
            avail = sorted(int(k) for k in self.groups_data["groupings"])
            raise ValueError(f"no grouping with C={c} in speaker groups (available: {avail})")
        self.num_groups = c
        self.centroids = np.asarray(self.groups_data["groupings"][str(c)]["centroids"], dtype=np.float64)

    # -- embeddings -------------------------------------------------------------------------
    def embed_features(self, feats: np.ndarray, allow_short: bool = False) -> tuple[np.ndarray, int]:
        """Mean embedding of the 3 s segments of active log-spectrum frames ``feats``. Less than
        ``MIN_ACTIVE_FRAMES`` frames is refused unless ``allow_short`` (then it is one segment)."""
        segs = fe.split_segments(feats, SEGMENT_FRAMES, MIN_ACTIVE_FRAMES)
        if not segs and allow_short and len(feats) > 0:
            segs = [feats]
        if not segs:
            raise SpeakerClassificationError(
                f"too little active speech: {len(feats) / fe.FRAMES_PER_SECOND:.2f} s found, "
                f"need at least {MIN_ACTIVE_FRAMES / fe.FRAMES_PER_SECOND:.1f} s")
        return self.encoder.embed_segments(segs).mean(axis=0), len(segs)

    def active_speech(self, pcm: np.ndarray, max_active_seconds: float | None) -> np.ndarray:
        try:
            x = fe.as_float_pcm(pcm)
        except ValueError as exc:
            raise SpeakerClassificationError(str(exc)) from exc
        if len(x) < fe.WIN:
            raise SpeakerClassificationError(f"audio too short to classify: {len(x) / fe.SAMPLE_RATE:.3f} s "
                                             f"(need {fe.WIN / fe.SAMPLE_RATE:.3f} s)")
        feats = fe.active_features(x)
        if len(feats) == 0:
            raise SpeakerClassificationError(
                "no speech found: the audio is silent or stationary noise (voice activity detector)")
        if max_active_seconds is not None:
            feats = feats[: int(round(max_active_seconds * fe.FRAMES_PER_SECOND))]
        return feats

    def embed_pcm(self, pcm: np.ndarray, max_active_seconds: float | None = None) -> np.ndarray:
        return self.embed_features(self.active_speech(pcm, max_active_seconds))[0]

    # -- decisions --------------------------------------------------------------------------
    def classify_embedding(self, z: np.ndarray, active_seconds: float = 0.0, segments: int = 0) -> Classification:
        g, d, conf = nearest_centroid(np.asarray(z, dtype=np.float64), self.centroids)
        return Classification(g, [float(v) for v in d], conf, active_seconds, segments)

    def classify_features(self, feats: np.ndarray, allow_short: bool = False) -> Classification:
        z, n = self.embed_features(feats, allow_short)
        return self.classify_embedding(z, len(feats) / fe.FRAMES_PER_SECOND, n)

    def classify(self, pcm: np.ndarray, max_active_seconds: float = DEFAULT_ACTIVE_SECONDS) -> Classification:
        """Group of the talker in ``pcm`` (16 kHz), from the first ``max_active_seconds`` of speech.

        Any amount of active speech is used (``active_seconds`` says how much; below
        ``DECIDE_SECONDS`` the result is less reliable); raises :class:`SpeakerClassificationError`
        only when there is no speech at all."""
        return self.classify_features(self.active_speech(pcm, max_active_seconds), allow_short=True)


@dataclass
class TrackerEvent:
    time_s: float  # audio time at which the window was evaluated
    window_group: int  # the window's own nearest group
    group: int  # the tracker's decision after this window
    confidence: float
    distances: tuple[float, ...] = ()


@dataclass
class GroupTracker:
    """Streaming group decision with hysteresis.

    ``push(pcm)`` takes 16 kHz audio chunks of any size and returns the current group (``None``
    until ``decide_seconds`` of active speech have been heard).  After the first decision, every
    ``window_seconds`` of new active speech the last ``context_seconds`` of active speech are
    classified; a window disagrees when its nearest group is another one and the current group's
    centroid is more than ``switch_margin`` (relative) farther away.  The group changes only after
    ``switch_after`` consecutive windows disagree, to the group they chose most often (ties:
    smallest summed distance).  Talkers near a group boundary therefore do not flap.
    """

    classifier: SpeakerClassifier
    decide_seconds: float = DECIDE_SECONDS
    window_seconds: float = 2.0
    context_seconds: float = 6.0
    switch_after: int = 3
    switch_margin: float = 0.1  # a window disagrees only if d[current] > (1 + margin) * d[its group]
    vad_block_frames: int = 50  # VAD decisions are made 0.5 s at a time
    vad_context_frames: int = 500  # thresholds from the last 5 s of frame energies
    group: int | None = None
    events: list[TrackerEvent] = field(default_factory=list)

    def __post_init__(self):
        self._pending = np.zeros(0, dtype=np.float64)
        self._samples_in = 0
        self._block_frames: list[np.ndarray] = []
        self._energy_hist: deque[float] = deque(maxlen=self.vad_context_frames)
        self._active: deque[np.ndarray] = deque(maxlen=int(round(max(self.context_seconds, self.decide_seconds)
                                                                    * fe.FRAMES_PER_SECOND)))
        self._active_total = 0
        self._since_eval = 0
        self._disagree: list[tuple[int, np.ndarray]] = []

    @property
    def group_index(self) -> int:
        """The group to carry in the stream: ``shared.constants.GROUP_UNKNOWN`` until decided."""
        from pnsc.shared.constants import GROUP_UNKNOWN

        return GROUP_UNKNOWN if self.group is None else int(self.group)

    @property
    def audio_seconds(self) -> float:
        return self._samples_in / fe.SAMPLE_RATE

    def push(self, pcm: np.ndarray) -> int | None:
        x = fe.as_float_pcm(pcm)
        self._samples_in += len(x)
        buf = np.concatenate([self._pending, x])
        n = fe.num_frames(len(buf))
        if n:
            frames = fe.frame_signal(buf[: (n - 1) * fe.HOP + fe.WIN])
            self._pending = buf[n * fe.HOP:]
            self._block_frames.extend(frames)
        else:
            self._pending = buf
        while len(self._block_frames) >= self.vad_block_frames:
            block = np.stack(self._block_frames[: self.vad_block_frames])
            del self._block_frames[: self.vad_block_frames]
            self._process_block(block)
        return self.group

    def _process_block(self, frames: np.ndarray) -> None:
        energy = fe.frame_energy_db(frames)
        self._energy_hist.extend(energy.tolist())
        mask = fe.active_frames_from_energy(energy, np.asarray(self._energy_hist))
        feats = fe.log_spectrum_frames(frames[mask])
        for row in feats:
            self._active.append(row)
            self._active_total += 1
            self._since_eval += 1
            if self.group is None:
                if self._active_total >= self.decide_seconds * fe.FRAMES_PER_SECOND:
                    self._evaluate(first=True)
            elif self._since_eval >= self.window_seconds * fe.FRAMES_PER_SECOND:
                self._evaluate(first=False)

    def _evaluate(self, first: bool) -> None:
        n_ctx = int(round((self.decide_seconds if first else self.context_seconds) * fe.FRAMES_PER_SECOND))
        feats = np.stack(list(self._active)[-n_ctx:])
        c = self.classifier.classify_features(feats)
        self._since_eval = 0
        if first or self.group is None:
            self.group = c.group
        elif c.group == self.group or c.distances[self.group] <= (1.0 + self.switch_margin) * c.distances[c.group]:
            self._disagree.clear()  # agrees, or prefers another group by too small a margin
        else:
            self._disagree.append((c.group, np.asarray(c.distances)))
            if len(self._disagree) >= self.switch_after:
                votes: dict[int, int] = {}
                for g, _ in self._disagree:
                    votes[g] = votes.get(g, 0) + 1
                dsum = np.sum([d for _, d in self._disagree], axis=0)
                best = max(votes, key=lambda g: (votes[g], -dsum[g]))
                self.group = best
                self._disagree.clear()
        self.events.append(TrackerEvent(self.audio_seconds, c.group, self.group, c.confidence, tuple(c.distances)))
