"""k-means grouping is seeded and reproducible; the shipped groups match the shipped encoder."""
from pathlib import Path

import numpy as np
import pytest

from pnsc.sender import speaker_frontend as fe
from pnsc.sender.speaker_classifier import SpeakerClassifier
from pnsc.shared.audio import load_audio
from pnsc.training.speaker.grouping import kmeans_groups, nearest, read_speaker_splits, utterance_segments
from pnsc.training.speaker.metrics import equal_error_rate, pair_scores
from tests.conftest import LIBRISPEECH, shared_files



def blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(4, 32))
    sizes = [40, 25, 20, 10]
    return np.concatenate([c + rng.normal(0, 0.5, size=(n, 32)) for c, n in zip(centres, sizes)]), sizes


def test_kmeans_is_seeded_and_ordered_by_size():
    pytest.importorskip("sklearn", reason="training extra (scikit-learn) not installed")
    x, sizes = blobs()
    c1, l1 = kmeans_groups(x, 4)
    c2, l2 = kmeans_groups(x[::-1].copy(), 4)  # order of the speakers does not matter
    assert np.array_equal(l1, l2[::-1])
    assert np.allclose(c1, c2)
    assert np.bincount(l1).tolist() == sizes  # groups numbered by decreasing size
    for g in range(4):  # centroid = mean of its members (paper's h^(c))
        assert np.allclose(c1[g], x[l1 == g].mean(axis=0))
    assert np.array_equal(nearest(x, c1), l1)


def test_eer():
    assert equal_error_rate(np.array([3.0, 2.0, 1.0, 0.0]), np.array([1, 1, 0, 0]))[0] == 0.0
    assert equal_error_rate(np.array([3.0, 2.0, 1.0, 0.0]), np.array([0, 0, 1, 1]))[0] == 1.0
    eer, _ = equal_error_rate(np.array([4.0, 3.0, 2.0, 1.0]), np.array([1, 0, 1, 0]))
    assert eer == pytest.approx(0.5)
    emb = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    scores, same = pair_scores(emb, ["a", "a", "b", "b"])
    assert same.sum() == 2 and equal_error_rate(scores, same)[0] == 0.0


def test_shipped_assignment_is_reproduced_by_shipped_encoder():
    clf = SpeakerClassifier()
    g = clf.groups_data
    splits = read_speaker_splits(Path(__file__).resolve().parent.parent / "models" / "speaker_splits.json")
    if splits is not None:
        val = {s for s in splits[1] if s in g["speakers"]}
        assert val == {s for s, v in g["speakers"].items() if v["split"] == "validation"}
    files = shared_files(LIBRISPEECH, "train-clean-100/*/*/*.flac")
    for f in files[::5]:  # 51 speakers (one utterance each)
        spk = f.parent.parent.name
        segs = utterance_segments(fe.active_features(load_audio(f, quiet=True)), allow_short=True)
        z = clf.encoder.embed_segments(segs).mean(axis=0)
        for c, grouping in g["groupings"].items():
            cents = np.asarray(grouping["centroids"])
            d = np.linalg.norm(cents - z, axis=1)
            assigned = grouping["assignment"][spk]
            # nearest centroid, up to rounding of the stored centroids
            assert d[assigned] <= d.min() + 1e-5, (c, spk, d)
