"""scripts/release_history.py: per-release means over the committed release scores, seeds pooled per utterance."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import release_history as rh  # noqa: E402


def _scores(path: Path, per: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"per_utterance": per}))


def _release(figures: Path, rnd: int, seed_values: list[list[float]], values55: list[float]) -> None:
    rs = figures / f"round{rnd}" / "release_scores"
    for k, vals in enumerate(seed_values):
        _scores(rs / f"s{k}.json", {"plpcnet-s": {f"u{i}": {"pesq_wb": v} for i, v in enumerate(vals)}})
    _scores(rs / "55.json", {"plpcnet-s": {f"w{i}": {"pesq_wb": v} for i, v in enumerate(values55)}})


def test_history_pools_seeds_and_orders_rounds(tmp_path: Path) -> None:
    figs = tmp_path / "figures"
    _release(figs, 22, [[1.0, 2.0], [1.2, 2.2], [1.4, 2.4]], [1.0, 1.5, 2.0])
    _release(figs, 9, [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], [1.0])
    (figs / "round10" / "release_scores").mkdir(parents=True)  # incomplete: no score files, left out
    rows = rh.history(figs, metrics=("pesq_wb",), systems=("plpcnet-s", "lpcnet-bl-l"))
    assert [r["round"] for r in rows] == [9, 22]
    assert rows[1]["seeds"]["plpcnet-s"]["pesq_wb"] == pytest.approx((1.2 + 2.2) / 2)
    assert rows[1]["55"]["plpcnet-s"]["pesq_wb"] == pytest.approx(1.5)
    assert rows[1]["utterances"] == {"seeds": 2, "55": 3} and "lpcnet-bl-l" not in rows[1]["seeds"]
    md = rh.markdown(rows, {"pesq_wb": 1.41}, metrics=("pesq_wb",), systems=("plpcnet-s",))
    assert "| round 22 | 20 × 3 seeds | 1.700 |" in md and "| round 22 | the 55 | 1.500 |" in md
    assert md.strip().endswith("| codec2-1600 | the 20 | 1.410 |")


def test_command_line_draws_the_figure_and_refuses_an_empty_folder(tmp_path: Path) -> None:
    figs = tmp_path / "figures"
    _release(figs, 27, [[1.3], [1.3], [1.3]], [1.2])
    peers = tmp_path / "scores.json"
    _scores(peers, {"codec2-1600": {"u0": {"pesq_wb": 1.41, "estoi": 0.66}}})
    out, js = tmp_path / "h.png", tmp_path / "h.json"
    cmd = [sys.executable, str(REPO / "scripts" / "release_history.py"), "--figures", str(figs), "--peers", str(peers)]
    r = subprocess.run(cmd + ["--out", str(out), "--json", str(js)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(js.read_text())
    assert data["peer"]["codec2-1600"]["pesq_wb"] == pytest.approx(1.41)
    assert data["releases"][0]["seeds"]["plpcnet-s"]["pesq_wb"] == pytest.approx(1.3)
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "release_history.py"), "--figures", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no release scores under" in r.stderr
