"""Block-sparse GRU-A (receiver/runtime/sparse.py and the C kernels' mv_sparse16) on the shipped decoders:
pruning helper, packing, sparse against dense on the same pruned weights on every ISA path, dense decoders
staying dense, and clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pnsc.receiver.runtime import ModelFileError, StreamingDecoder
from pnsc.receiver.runtime.backends import SynthState
from pnsc.receiver.runtime.ckernel import CBackend, cpu_kernels
from pnsc.receiver.runtime.model import CONTEXT, CORR_INDEX, FRAME_SIZE, PERIOD_INDEX, LoadedModel, locate
from pnsc.receiver.runtime.sparse import (SPARSE_BLOCK, SPARSE_MAX_DENSITY, block_density, block_mask,
                                          pack_block_sparse, prune_gru_a)
from pnsc.shared.lpc import lpc_from_cepstrum
from tests.conftest import SAMPLES
from tests.test_runtime import DECODERS

KERNELS = [k for k in ("avx512", "avx2", "generic")]


def _have(kernel: str) -> bool:
    return {"avx512": "avx512-vnni"}.get(kernel, kernel) in cpu_kernels()


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    """0.5 s of real coded speech (a bundled clip through analysis and 1.6 kb/s quantization)."""
    from pnsc.shared.audio import load_audio
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    pcm = load_audio(SAMPLES / "3080-5032-0005.flac", quiet=True)[8000:16000]
    return quantize_features(extract_features(pcm))[1]


@pytest.mark.parametrize("family,group,density", [("plpcnet-s", 1, 0.1), ("plpcnet-l", 2, 0.2),
                                                  ("lpcnet-bl-s", None, 0.5)])
def test_prune_keeps_the_requested_blocks_and_the_diagonal(family, group, density):
    w = LoadedModel(locate(family, group)).weights.wa_hh
    n = w.shape[1]
    p = prune_gru_a(w, density)
    per = n // SPARSE_BLOCK
    for g in range(3):
        orig = w[g * n:(g + 1) * n].reshape(per, SPARSE_BLOCK, n)
        got = p[g * n:(g + 1) * n].reshape(per, SPARSE_BLOCK, n)
        kept = got.any(axis=1)
        assert kept.sum() == round(density * per * n)
        for b in range(per):  # the diagonal 16x1 blocks of each gate matrix are all kept
            assert kept[b, b * SPARSE_BLOCK:(b + 1) * SPARSE_BLOCK].all()
        kb = np.broadcast_to(kept[:, None, :], got.shape)
        assert np.array_equal(got[kb], orig[kb]) and not got[~kb].any()  # kept blocks untouched, others zero
        norm = np.sqrt((orig.astype(np.float64) ** 2).sum(axis=1))
        diag = np.zeros_like(kept)
        for b in range(per):
            diag[b, b * SPARSE_BLOCK:(b + 1) * SPARSE_BLOCK] = True
        assert norm[kept & ~diag].min() >= norm[~kept].max()  # the largest off-diagonal blocks survive
    assert abs(block_density(p) - density) < 1e-3 and block_density(w) == 1.0
    assert np.array_equal(w, LoadedModel(locate(family, group)).weights.wa_hh)  # pruned a copy only


def test_pack_block_sparse_round_trips():
    w = prune_gru_a(LoadedModel(locate("plpcnet-s", 1)).weights.wa_hh, 0.15)
    idx, vals = pack_block_sparse(w)
    n = w.shape[1]
    back = np.zeros_like(w)
    pos = off = 0
    for b in range(3 * n // SPARSE_BLOCK):
        c = idx[pos]
        cols = idx[pos + 1:pos + 1 + c]
        assert np.all(np.diff(cols) > 0)
        back[b * SPARSE_BLOCK:(b + 1) * SPARSE_BLOCK, cols] = vals[off:off + c * SPARSE_BLOCK].reshape(c, SPARSE_BLOCK).T
        pos, off = pos + 1 + c, off + c * SPARSE_BLOCK
    assert pos == idx.size and off == vals.size and np.array_equal(back, w)
    assert idx.dtype == np.int32 and vals.dtype == np.float32 and block_mask(w).sum() * SPARSE_BLOCK == vals.size


def _forced_run(model, dense, sparse, feats, frames: int):
    """Dense backend free-running; the sparse one teacher-forced along it from the dense state at each frame.
    -> (largest relative GRU-A state difference after a frame, fraction of equal sample choices)."""
    lpc = lpc_from_cepstrum(feats[:frames, :18])
    padded = np.concatenate([np.repeat(feats[:1], CONTEXT, 0), feats[:frames], np.repeat(feats[frames - 1:frames],
                                                                                         CONTEXT, 0)])
    cond = model.frame_net.run_sequence(padded)
    rng = np.random.default_rng(3)
    st = SynthState.zeros(*model.size)
    rel, same = 0.0, 0
    for t in range(frames):
        uni = rng.random(FRAME_SIZE, dtype=np.float32)
        corr, period = float(feats[t, CORR_INDEX]), float(feats[t, PERIOD_INDEX])
        ss = st.copy()
        y = dense.run_frame(cond[t], lpc[t], corr, uni, st, period=period)
        ys = sparse.run_frame(cond[t], lpc[t], corr, uni, ss, force=y, period=period)
        rel = max(rel, float(np.abs(ss.ha - st.ha).max() / max(np.abs(st.ha).max(), 1e-6)))
        same += int((ys == y).sum())
    return rel, same / (frames * FRAME_SIZE)


@pytest.mark.parametrize("kernel", KERNELS)
def test_sparse_equals_dense_on_the_same_pruned_weights(kernel, feats):
    if not _have(kernel):
        pytest.skip(f"this CPU has no {kernel}")
    for family, group, density in (("plpcnet-s", 1, 0.1), ("plpcnet-l", 0, 0.2)):
        model = LoadedModel(locate(family, group), prune_gru_a=density)
        dense = CBackend(model, "fp32", kernel, gru_a_layout="dense")
        sparse = CBackend(model, "fp32", kernel, gru_a_layout="sparse")
        assert sparse.net.sparse and not dense.net.sparse and sparse.gru_a_layout == "sparse"
        rel, match = _forced_run(model, dense, sparse, feats, 12)
        # same per-row accumulation order and multiply-add: equal bit for bit in practice; 1e-5 is the contract
        assert rel <= 1e-5 and match >= 0.999, (family, kernel, rel, match)
        # free-running deterministic decode (seeded), the pruned model's auto layout (sparse) against dense
        auto = StreamingDecoder(family, group, kernel=kernel, seed=5, bank=_One(model))
        assert auto.backend.gru_a_layout == "sparse"
        forced_dense = LoadedModel(locate(family, group), prune_gru_a=density, gru_a_layout="dense")
        ref = StreamingDecoder(family, group, kernel=kernel, seed=5, bank=_One(forced_dense))
        assert ref.backend.gru_a_layout == "dense"
        # the whole 0.5 s: a decoder pruned to 10 % without sparse training may stay silent for its first
        # 1,000 samples (round 22's group 1 did), and a silent stream would compare nothing
        a, b = auto.decode(feats), ref.decode(feats)
        assert a.size == len(feats) * FRAME_SIZE and np.mean(a == b) >= 0.999 and np.abs(a).max() > 0


class _One:
    """One preloaded model as a StreamingDecoder bank."""

    def __init__(self, model):
        self._m = model

    def model(self, family, group):
        return self._m


def test_every_isa_path_runs_the_same_sparse_decoder(feats):
    ks = [k for k in KERNELS if _have(k)]
    model = LoadedModel(locate("plpcnet-s", 2), prune_gru_a=0.1)
    outs = []
    for k in ks:
        be = CBackend(model, "fp32", k)
        assert be.gru_a_layout == "sparse" and be.net.sparse and be.kernel == {"avx512": "avx512-vnni"}.get(k, k)
        ref = CBackend(model, "fp32", ks[0], gru_a_layout="dense")
        rel, match = _forced_run(model, ref, be, feats, 8)  # every path against the best path's dense loop
        outs.append((k, rel, match))
    for k, rel, match in outs:  # across ISAs only the activation approximations differ (as for dense)
        assert rel < 1e-3 and match >= 0.99, (k, rel, match)


@pytest.mark.parametrize("family,group", DECODERS, ids=[f"{f}-{g}" for f, g in DECODERS])
def test_dense_decoders_keep_the_dense_path(family, group):
    model = LoadedModel(locate(family, group))
    assert block_density(model.weights.wa_hh) > SPARSE_MAX_DENSITY
    for prec in ("fp32", "int8"):
        be = model.backend(prec, None)
        assert be.gru_a_layout == "dense" and not be.net.sparse


def test_bad_densities_and_layouts_give_clear_errors(monkeypatch):
    files = locate("plpcnet-s", 1)
    w = LoadedModel(files).weights.wa_hh
    for bad in (0, -0.1, 1.5, float("nan"), 0.05, "x"):  # 0.05 < 16/256: fewer blocks than the diagonal
        with pytest.raises(ValueError, match="GRU-A block density must be"):
            prune_gru_a(w, bad)
        with pytest.raises(ValueError, match="GRU-A block density must be"):
            LoadedModel(files, prune_gru_a=bad)
    with pytest.raises(ValueError, match="unknown GRU-A layout 'csr'"):
        LoadedModel(files, gru_a_layout="csr")
    pruned = LoadedModel(files, prune_gru_a=0.2)
    with pytest.raises(ValueError, match="fp32 only"):
        CBackend(pruned, "int8", None, gru_a_layout="sparse")
    assert CBackend(pruned, "int8", None).gru_a_layout == "dense"  # auto: int8 stays dense
    # the C loader checks the index it is given (the kernel trusts it)
    from pnsc.receiver.runtime import ckernel

    def corrupt(m):
        idx, vals = pack_block_sparse(m)
        idx = idx.copy()
        idx[1] = m.shape[1]  # a column out of range
        return idx, vals

    monkeypatch.setattr(ckernel, "pack_block_sparse", corrupt)
    with pytest.raises(ModelFileError, match="sp_idx is not a block-sparse index"):
        CBackend(pruned, "fp32", None)


def test_bench_command_prune_option(capsys):
    from pnsc.cli import main

    assert main(["bench", "decoder", "--json", "--seconds", "0.3", "--families", "plpcnet-s", "--precisions", "fp32",
                 "--prune-gru-a", "0.1"]) == 0
    res = json.loads(capsys.readouterr().out)
    (row,) = res["results"]
    assert res["prune_gru_a"] == 0.1 and row["pruned"] and row["gru_a_layout"] == "sparse"
    assert abs(row["gru_a_density"] - 0.1) < 1e-3 and 0 < row["rtf"] < 5
    assert main(["bench", "decoder", "--json", "--seconds", "0.3", "--families", "plpcnet-s", "--precisions", "fp32",
                 "--prune-gru-a", "0.1", "--gru-a", "dense"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["gru_a_layout"] == "dense" and abs(row["gru_a_density"] - 0.1) < 1e-3
    for bad in (["--prune-gru-a", "0"], ["--prune-gru-a", "1.5"], ["--prune-gru-a", "0.01"],
                ["--prune-gru-a", "0.2", "--precisions", "int8", "--gru-a", "sparse"]):
        assert main(["bench", "decoder", "--seconds", "0.3", "--families", "plpcnet-s", *bad]) == 2
        err = capsys.readouterr().err
        assert "pnsc: error:" in err and "Traceback" not in err


def test_auto_layout_follows_the_threshold():
    files = locate("plpcnet-s", 0)
    above = LoadedModel(files, prune_gru_a=0.5)  # sparser than dense, but not enough to pay
    below = LoadedModel(files, prune_gru_a=SPARSE_MAX_DENSITY)
    assert block_density(above.weights.wa_hh) > SPARSE_MAX_DENSITY >= block_density(below.weights.wa_hh)
    assert above.backend("fp32", None).gru_a_layout == "dense"
    assert below.backend("fp32", None).gru_a_layout == "sparse" and below.backend("fp32", None).net.sparse
