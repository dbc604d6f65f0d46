"""Speaker embeddings per speaker (mean of segment embeddings) and k-means speaker groups (sec. 2.3)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pnsc.sender import speaker_frontend as fe
from pnsc.sender.speaker_classifier import MIN_ACTIVE_FRAMES, SEGMENT_FRAMES

KMEANS_SEED = 0
KMEANS_INITS = 20


SHORT_MIN_FRAMES = 50  # offline speaker means accept one short segment (>= 0.5 s) when nothing longer exists


def utterance_segments(feats: np.ndarray, allow_short: bool = False) -> list[np.ndarray]:
    """3 s segments of an utterance's active frames (the unit every embedding is computed on).

    ``allow_short``: an utterance with less than 1.5 s of active speech gives one shorter segment
    (>= 0.5 s) instead of none, so every corpus speaker gets a mean embedding for grouping.
    """
    segs = fe.split_segments(feats, SEGMENT_FRAMES, MIN_ACTIVE_FRAMES)
    if not segs and allow_short and len(feats) >= SHORT_MIN_FRAMES:
        segs = [feats]
    return segs


def kmeans_groups(points: np.ndarray, c: int, seed: int = KMEANS_SEED) -> tuple[np.ndarray, np.ndarray]:
    """k-means (Euclidean, fixed seed) -> (centroids (c, D), labels (n,)).

    Clusters are renumbered by decreasing size (ties: smaller first centroid coordinate), and each
    centroid is the mean of its members' embeddings, as in the paper's h^(c).
    """
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=c, n_init=KMEANS_INITS, random_state=seed).fit(points)
    labels = km.labels_
    cents = np.stack([points[labels == k].mean(axis=0) for k in range(c)])
    sizes = np.bincount(labels, minlength=c)
    order = sorted(range(c), key=lambda k: (-sizes[k], cents[k, 0]))
    remap = np.empty(c, dtype=int)
    remap[order] = np.arange(c)
    return cents[order], remap[labels]


def nearest(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    d = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def read_speaker_splits(path: Path) -> tuple[list[str], list[str]] | None:
    """(train, validation) LibriSpeech speaker ids from the corpus helper's split file, or None."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())

    def find(obj, words):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if any(k.lower() == w for w in words) and isinstance(v, list):
                    return [str(s) for s in v]
            for v in obj.values():
                r = find(v, words)
                if r is not None:
                    return r
        return None

    train = find(data, ("train", "training", "train_speakers"))
    val = find(data, ("validation", "val", "valid", "validation_speakers", "val_speakers"))
    if train is None or val is None:
        raise ValueError(f"{path}: cannot find train/validation speaker lists")
    return train, val
