"""paired_table: means and Student-t paired differences against a reference entry."""
from __future__ import annotations

import numpy as np

from pnsc.evaluation.stats import paired_difference, paired_table


def test_reference_row_has_means_only_and_others_their_paired_difference():
    scores = {"a": {"m": [1.0, 2.0, 3.0, 4.0]}, "b": {"m": [1.5, 2.4, 3.6, 4.3]}}
    lines = paired_table(scores, "a", ["m"])
    assert lines[0] == "| run | m |" and lines[1] == "|---|---|"
    assert lines[2] == "| a | 2.500 |"
    d = paired_difference(scores["b"]["m"], scores["a"]["m"])
    assert np.isclose(d["mean"], 0.45) and d["wins"] == 4 and d["n"] == 4
    assert lines[3] == f"| b | 2.950 (+0.450 ± {d['ci95']:.3f}, 4/4) |"


def test_a_single_pair_has_no_interval():
    lines = paired_table({"x": {"m": [1.0]}, "y": {"m": [0.5]}}, "x", ["m"], label="scale")
    assert lines[0].startswith("| scale |") and lines[3] == "| y | 0.500 (-0.500 ± n/a, 0/1) |"
