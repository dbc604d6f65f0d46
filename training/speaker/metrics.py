"""Equal error rate of same/different-speaker decisions."""
from __future__ import annotations

import numpy as np


def equal_error_rate(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """EER and its threshold for scores (higher = more likely same speaker)."""
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise ValueError("need both same- and different-speaker pairs")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    n_pos, n_neg = y.sum(), (~y).sum()
    # accepting the top k pairs: false rejections = positives after k, false acceptances = negatives in top k
    tp = np.concatenate([[0], np.cumsum(y)])
    fp = np.concatenate([[0], np.cumsum(~y)])
    frr = 1.0 - tp / n_pos
    far = fp / n_neg
    k = int(np.argmin(np.abs(frr - far)))
    eer = float((frr[k] + far[k]) / 2)
    thr = float(s[k - 1]) if k > 0 else float(s[0] + 1)
    return eer, thr


def pair_scores(emb: np.ndarray, labels: list, groups: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dot-product scores over all unordered pairs of segment embeddings.

    ``groups`` (e.g. utterance ids): pairs from the same group are skipped, so same-speaker pairs
    come from different utterances where a speaker has several.
    """
    emb = np.asarray(emb, dtype=np.float64)
    lab = np.asarray(labels)
    iu, ju = np.triu_indices(len(emb), k=1)
    if groups is not None:
        g = np.asarray(groups)
        keep = g[iu] != g[ju]
        iu, ju = iu[keep], ju[keep]
    scores = (emb[iu] * emb[ju]).sum(axis=1)
    return scores, lab[iu] == lab[ju]
