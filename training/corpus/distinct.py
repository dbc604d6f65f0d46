"""Speaker-distinctness check for pseudo-speakers: are they separable from each other?

Embedding of an utterance: mean and standard deviation of 20 MFCCs (40 mel bands, 25 ms / 10 ms) over its
active frames, plus mean log-F0-proxy features would be redundant with MFCC std; this simple statistics
vector separates vocal-tract length and timbre, which is what the blends and rate warps change.
A pseudo-speaker is *separable* when held-out utterances are attributed to it by a nearest-centroid
classifier (leave-one-out, cosine distance on standardized embeddings) at least ``min_accuracy`` of the
time. Candidates are dropped greedily, worst first, until every remaining one is separable.
"""
from __future__ import annotations

import numpy as np

from pnsc.shared.constants import SAMPLE_RATE


def _mel_matrix(n_fft: int = 512, n_mels: int = 40, rate: int = SAMPLE_RATE) -> np.ndarray:
    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz2mel(60.0), hz2mel(rate / 2 - 200), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    m = np.zeros((n_mels, bins.size))
    for i in range(n_mels):
        lo, c, hi = hz[i], hz[i + 1], hz[i + 2]
        m[i] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return m


_MEL = _mel_matrix()


def embedding(audio: np.ndarray, n_mfcc: int = 20) -> np.ndarray:
    """40-dim utterance embedding (MFCC means and standard deviations over active frames)."""
    from scipy.fft import dct

    x = np.asarray(audio, np.float64)
    win, hop = 400, 160
    if len(x) < win:
        raise ValueError("utterance too short for an embedding")
    n = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, 512)) ** 2
    logmel = np.log(power @ _MEL.T + 1e-10)
    energy = logmel.max(axis=1)
    active = energy > energy.max() - 6.0  # within ~26 dB of the loudest frame
    mfcc = dct(logmel[active], type=2, norm="ortho", axis=1)[:, 1:n_mfcc + 1]
    return np.concatenate([mfcc.mean(0), mfcc.std(0)])


def separability(embeddings: dict[str, np.ndarray]) -> dict[str, float]:
    """Leave-one-out nearest-centroid accuracy per speaker; ``embeddings[spk]`` is ``(n_utt, d)``."""
    speakers = sorted(embeddings)
    allv = np.concatenate([embeddings[s] for s in speakers])
    mu, sd = allv.mean(0), allv.std(0) + 1e-9
    z = {s: (embeddings[s] - mu) / sd for s in speakers}
    sums = {s: z[s].sum(0) for s in speakers}
    acc = {}
    for s in speakers:
        n = len(z[s])
        if n < 2:
            raise ValueError(f"speaker {s}: need at least 2 utterances for the check, got {n}")
        correct = 0
        for i in range(n):
            cents = np.stack([(sums[t] - z[s][i]) / (n - 1) if t == s else sums[t] / len(z[t]) for t in speakers])
            cents /= np.linalg.norm(cents, axis=1, keepdims=True) + 1e-9
            v = z[s][i] / (np.linalg.norm(z[s][i]) + 1e-9)
            correct += speakers[int(np.argmax(cents @ v))] == s
        acc[s] = correct / n
    return acc


def select_separable(embeddings: dict[str, np.ndarray], min_accuracy: float = 0.75) -> tuple[list[str], dict]:
    """Drop the least separable candidate until all remaining reach ``min_accuracy``.

    Returns (kept speakers, report {speaker: {"accuracy": first-round accuracy, "kept": bool,
    "final_accuracy": accuracy in the last round it took part in}}).
    """
    remaining = dict(embeddings)
    first = separability(remaining) if len(remaining) > 1 else {s: 1.0 for s in remaining}
    report = {s: {"accuracy": round(first[s], 3), "kept": True} for s in embeddings}
    while len(remaining) > 1:
        acc = separability(remaining)
        for s, a in acc.items():
            report[s]["final_accuracy"] = round(a, 3)
        worst = min(sorted(acc), key=lambda s: acc[s])
        if acc[worst] >= min_accuracy:
            break
        report[worst]["kept"] = False
        del remaining[worst]
    return sorted(remaining), report
