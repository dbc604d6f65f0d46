"""GRU-A block sparsity (training.lpcnet.sparsity): schedule, masks, training end to end, resume, export."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from pnsc.training.lpcnet import multi, sparsity, train  # noqa: E402
from pnsc.training.lpcnet.synthetic import tiny_train_args  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _weights(n: int, gates: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(gates * n, n, generator=torch.Generator().manual_seed(seed))


def test_cubic_schedule_as_lpcnet():
    d = sparsity.density_at
    assert d(0, 0.1, 100, 300) == 1.0 and d(100, 0.1, 100, 300) == 1.0
    assert d(200, 0.1, 100, 300) == pytest.approx(1 - 0.9 * (1 - 0.5 ** 3))  # mid ramp: 0.2125
    assert d(300, 0.1, 100, 300) == 0.1 and d(10_000, 0.1, 100, 300) == 0.1
    ramp = [d(t, 0.1, 100, 300) for t in range(100, 301)]
    assert all(x > y for x, y in zip(ramp, ramp[1:]))  # falls all the way
    assert d(5, 0.25, 0, 0) == 0.25  # no ramp: the target at once


def test_block_rows_and_settings():
    assert sparsity.block_rows(384) == sparsity.block_rows(256) == 16
    assert sparsity.block_rows(24) == 12 and sparsity.block_rows(8) == 8 and sparsity.block_rows(17) == 1
    for bad in ((0.0, 0, 1, 1), (1.5, 0, 1, 1), (float("nan"), 0, 1, 1), (0.1, 5, 4, 1), (0.1, -1, 4, 1),
                (0.1, 0, 4, 0)):
        with pytest.raises(ValueError):
            sparsity.check_settings(*bad)
    with pytest.raises(ValueError, match="recurrent weight matrix"):
        sparsity.block_mask(torch.zeros(10, 4), 0.5)


@pytest.mark.parametrize("n,density", [(32, 0.1), (48, 0.25), (24, 0.5)])
def test_masks_keep_the_diagonal_and_the_largest_16x1_blocks(n, density):
    w = _weights(n)
    rows = sparsity.block_rows(n)
    mask = sparsity.block_mask(w, density)
    assert mask.shape == w.shape and mask.dtype == torch.bool
    g = mask.reshape(3, n, n)
    assert bool(g[:, torch.arange(n), torch.arange(n)].all())  # every gate's diagonal
    off = g.clone()
    off[:, torch.arange(n), torch.arange(n)] = False
    blocks = off.reshape(3, n // rows, rows, n)
    # whole blocks of `rows` consecutive output rows x 1 column, apart from the diagonal
    kept = blocks.any(2)
    full = blocks.all(2) | (blocks.sum(2) == rows - 1)  # a block crossing the diagonal has rows - 1 off it
    assert bool((kept == full).all())
    per_gate = round(density * (n // rows) * n)
    assert kept.reshape(3, -1).sum(1).tolist() == [per_gate] * 3  # exactly, in each gate matrix
    # they are the largest blocks by off-diagonal magnitude
    mag = sparsity.block_magnitude(w).reshape(3, -1)
    k = kept.reshape(3, -1)
    for i in range(3):
        assert mag[i][k[i]].min() >= mag[i][~k[i]].max()


def test_application_zeroes_whole_blocks_and_density_counts_them():
    n = 32
    w = _weights(n, seed=3)
    assert sparsity.block_density(w) == 1.0 and sparsity.export_notes(w) == {}
    mask = sparsity.block_mask(w, 0.2)
    diag = w.reshape(3, n, n)[:, torch.arange(n), torch.arange(n)].clone()
    sparsity.apply_mask(w, mask)
    assert torch.equal(w == 0, ~mask)  # exact zeros, only outside the mask
    assert sparsity.block_density(w) == pytest.approx(round(0.2 * 64) / 64)
    assert torch.equal(w.reshape(3, n, n)[:, torch.arange(n), torch.arange(n)], diag)
    assert sparsity.export_notes(w) == {"gru_a_density": round(round(0.2 * 64) / 64, 6), "gru_a_block": "16x1"}


def test_sparsifier_ramps_prunes_monotonically_then_freezes():
    n = 32
    w = torch.nn.Parameter(_weights(n, seed=5))
    sp = sparsity.BlockSparsifier(w, 0.1, start=2, end=10, every=2)
    masks = {}
    for step in range(1, 16):
        with torch.no_grad():  # an "optimizer step" that moves every weight, pruned ones too
            w.add_(torch.randn(w.shape, generator=torch.Generator().manual_seed(step)) * 0.01)
        got = sp.after_step(step)
        assert (got is not None) == (step in (2, 4, 6, 8, 10)), step
        if step < 2:  # before the ramp: no mask, nothing pruned
            assert sp.mask is None and sp.density() == 1.0
            continue
        masks[step] = sp.mask.clone()
        assert torch.equal(w.detach() == 0, ~sp.mask)
    assert sp.mask_density == 0.1 and sp.density() == pytest.approx(round(0.1 * 64) / 64)
    for a, b in ((2, 4), (4, 6), (6, 8), (8, 10)):  # a pruned block never comes back
        assert not bool((masks[b] & ~masks[a]).any())
    assert all(torch.equal(masks[s], masks[10]) for s in range(10, 16))  # fixed after the ramp
    # restored from its state, it applies the same mask and does not recompute it
    sp2 = sparsity.BlockSparsifier(w, 0.1, 2, 10, 2, sp.state())
    assert sp2.due(16) is None and torch.equal(sp2.mask, sp.mask)
    # a changed target after the ramp: one new final mask
    assert sparsity.BlockSparsifier(w, 0.05, 2, 10, 2, sp.state()).due(16) == 0.05


def test_prune_like_zeroes_the_masked_blocks_of_a_copy_and_refuses_another_shape():
    n = 32
    w = torch.nn.Parameter(_weights(n, seed=6))
    sp = sparsity.BlockSparsifier(w, 0.25, start=0, end=0, every=1)
    other = torch.ones_like(w.detach())
    sp.prune_like(other)  # before the first mask: nothing pruned
    assert bool((other == 1).all())
    sp.after_step(1)
    sp.prune_like(other)
    assert torch.equal(other == 0, ~sp.mask)
    with pytest.raises(ValueError, match="is not the weight's"):
        sp.prune_like(torch.ones(w.shape[0], w.shape[1] + 1))


# ---------------------------------------------------------------- training
@pytest.fixture
def data(lpcnet_tiny_data):
    return lpcnet_tiny_data


def _args(data, out, *extra):
    return tiny_train_args(data, out, "--epochs", "2", *extra)


SPARSE = ["--sparse-density", "0.25", "--sparse-start", "0", "--sparse-end", "2", "--sparse-every", "1"]


def test_training_reaches_the_target_block_density_and_logs_it(data, tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "pnsc.training.lpcnet.train", *_args(data, out, *SPARSE,
                        "--max-steps", "4", "--epochs", "1", "--batch", "12")], cwd=REPO, capture_output=True, text=True,
                       timeout=120, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    ck = torch.load(out / "last.pt", weights_only=False)
    w = ck["model"]["gru_a.weight_hh_l0"]
    assert w.shape == (72, 24)  # tiny: N = 24, blocks of 12 x 1
    assert sparsity.block_density(w) == 0.25  # 12 of 48 blocks per gate
    assert ck["args"]["sparse_density"] == 0.25 and ck["sparse"]["mask_density"] == 0.25
    assert torch.equal(w == 0, ~ck["sparse"]["mask"])
    assert "GRU-A mask at density 0.3438" in r.stderr and "GRU-A mask at density 0.2500" in r.stderr
    hist = json.loads((out / "history.json").read_text())  # 48 sequences / 12 = one epoch of 4 steps
    assert len(hist) == 1 and hist[0]["step"] == 4 and hist[0]["gru_a_density"] == 0.25
    # a dense run logs no density
    dense = tmp_path / "dense"
    train.main(_args(data, dense, "--max-steps", "1", "--epochs", "1", "--batch", "48"))  # one step = one epoch
    assert "gru_a_density" not in json.loads((dense / "history.json").read_text())[-1]
    with pytest.raises(SystemExit, match="sparse density must be in"):
        train.main(_args(data, tmp_path / "bad", "--max-steps", "1", "--sparse-density", "0"))
    with pytest.raises(SystemExit, match="0 <= start <= end"):
        train.main(_args(data, tmp_path / "bad", "--max-steps", "1", "--sparse-density", "0.5",
                         "--sparse-start", "10", "--sparse-end", "5"))


def test_best_checkpoint_is_only_ever_a_final_mask_model(data, tmp_path):
    """A validation during the ramp (a denser model, usually a lower loss) must not become best.pt: export
    and recipe branches start from best.pt."""
    out = tmp_path / "run"
    train.main(_args(data, out, "--sparse-density", "0.25", "--sparse-start", "0", "--sparse-end", "3",
                     "--sparse-every", "1", "--max-steps", "6", "--epochs", "3", "--batch", "24",
                     "--lr", "1e-9"))  # (no learning: pruning alone, so the ramp's denser model scores best)
    hist = json.loads((out / "history.json").read_text())  # 48 sequences / 24: a validation every 2 steps
    assert [h["step"] for h in hist] == [2, 4, 6] and hist[0]["gru_a_density"] > 0.25
    best = torch.load(out / "best.pt", weights_only=False)
    assert sparsity.block_density(best["model"]["gru_a.weight_hh_l0"]) == 0.25
    assert best["val_loss"] == min(h["val_loss"] for h in hist[1:])
    last = torch.load(out / "last.pt", weights_only=False)
    assert last["best_final"] is True and last["best_val"] == best["val_loss"]


def test_patience_waits_for_the_final_mask(data, tmp_path):
    """Validations during the pruning ramp cannot be a best, so they do not use up --patience."""
    out = tmp_path / "run"
    train.main(_args(data, out, "--sparse-density", "0.25", "--sparse-start", "0", "--sparse-end", "3",
                     "--sparse-every", "1", "--max-steps", "6", "--epochs", "3", "--batch", "24", "--lr", "1e-9",
                     "--patience", "1"))
    hist = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in hist] == [2, 4, 6]
    best = torch.load(out / "best.pt", weights_only=False)
    assert sparsity.block_density(best["model"]["gru_a.weight_hh_l0"]) == 0.25


def test_resume_keeps_mask_and_options_and_reproduces_an_uninterrupted_run(data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ramp = ["--sparse-density", "0.25", "--sparse-start", "1", "--sparse-end", "7", "--sparse-every", "2"]
    train.main(_args(data, a, *ramp, "--max-steps", "9"))
    train.main(_args(data, b, *ramp, "--max-steps", "4"))  # stops mid-ramp
    mid = torch.load(b / "last.pt", weights_only=False)
    assert mid["sparse"]["mask_density"] == pytest.approx(sparsity.density_at(3, 0.25, 1, 7))
    train.main(_args(data, b, "--max-steps", "9"))  # no sparse options: as saved
    ca, cb = torch.load(a / "last.pt", weights_only=False), torch.load(b / "last.pt", weights_only=False)
    assert ca["step"] == cb["step"] == 9
    for k in ("sparse_density", "sparse_start", "sparse_end", "sparse_every"):
        assert cb["args"][k] == ca["args"][k]
    assert cb["args"]["sparse_end"] == 7
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    assert torch.equal(ca["sparse"]["mask"], cb["sparse"]["mask"])
    assert sparsity.block_density(cb["model"]["gru_a.weight_hh_l0"]) == 0.25
    # after the ramp the mask stays fixed across a resume; an explicit option replaces the saved one
    train.main(_args(data, b, "--max-steps", "11", "--epochs", "3"))
    assert torch.equal(torch.load(b / "last.pt", weights_only=False)["sparse"]["mask"], cb["sparse"]["mask"])
    train.main(_args(data, b, "--max-steps", "12", "--epochs", "3", "--sparse-density", "0.125"))
    ck = torch.load(b / "last.pt", weights_only=False)
    assert ck["args"]["sparse_density"] == 0.125
    assert sparsity.block_density(ck["model"]["gru_a.weight_hh_l0"]) == 0.125
    assert not bool((ck["sparse"]["mask"] & ~cb["sparse"]["mask"]).any())  # pruned further, nothing revived
    # the durable state tar (float16 weights) keeps the mask and the zeros
    from pnsc.training.lpcnet.state import load_state, save_state

    save_state(tmp_path, tmp_path / "state.tar")
    load_state(tmp_path / "state.tar", tmp_path / "restored")
    back = torch.load(tmp_path / "restored" / "b" / "last.pt", weights_only=False)
    assert torch.equal(back["sparse"]["mask"], ck["sparse"]["mask"]) and back["sparse"]["mask_density"] == 0.125
    assert torch.equal(back["model"]["gru_a.weight_hh_l0"] == 0, ~ck["sparse"]["mask"])
    # off again: the pruned weights train (in epoch 2, which the default schedule gives to the frame-rate net)
    train.main(_args(data, b, "--max-steps", "13", "--epochs", "3", "--sparse-density", "1",
                     "--quantized-after-epoch", "3"))
    ck = torch.load(b / "last.pt", weights_only=False)
    assert ck["sparse"] is None and sparsity.block_density(ck["model"]["gru_a.weight_hh_l0"]) == 1.0


def test_multi_tag():
    assert multi.split_branch("lpcnet-bl-l.sparse0.1") == ("lpcnet-bl-l", ["--sparse-density", "0.1"])
    assert multi.split_branch("lpcnet-bl-s.sparse0.25.lr5e-4")[1] == ["--sparse-density", "0.25", "--lr", "5e-4"]
    assert multi.expand("lpcnet-bl-l.sparse0.1", 4) == ["lpcnet-bl-l.sparse0.1"]
    with pytest.raises(SystemExit, match="unknown recipe tag"):
        multi.split_branch("lpcnet-bl-l.sparse")
    # the tag's defaults ramp over the first half of a ~8,000-step branch
    d = train.SCHEDULE_DEFAULTS
    assert d["sparse_density"] == 1.0 and 0 < d["sparse_start"] < d["sparse_end"] <= 4000


def test_export_keeps_the_exact_zeros_and_records_the_density(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from pnsc.training.lpcnet.model import LPCNet, config_for

    torch.manual_seed(0)
    m = LPCNet(config_for("tiny")).eval()
    w = m.gru_a.weight_hh_l0
    mask = sparsity.block_mask(w, 0.25)
    sparsity.apply_mask(w, mask)
    runs, models = tmp_path / "runs", tmp_path / "models"
    (runs / "lpcnet-bl-s").mkdir(parents=True)
    models.mkdir()
    torch.save({"model": m.state_dict(), "config": m.cfg.to_dict(), "name": "lpcnet-bl-s", "step": 5, "epoch": 1,
                "val_loss": 5.0, "args": {"val_features": "qfeatures"}, "data_summary": {}},
               runs / "lpcnet-bl-s" / "best.pt")
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "export_decoders.py"), str(runs),
                        "--models-dir", str(models)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    entry = json.loads((models / "manifest.json").read_text())["models"][0]
    assert entry["gru_a_density"] == 0.25 and entry["gru_a_block"] == "12x1"
    sample = onnx.load(models / "decoders" / "lpcnet-bl-s.onnx")
    meta = {p.key: p.value for p in sample.metadata_props}
    assert meta["gru_a_density"] == "0.25" and meta["weights"].startswith("float16")
    inits = {i.name: numpy_helper.to_array(i) for i in sample.graph.initializer}
    stored = inits["gru_a.weight_hh_l0__f16"]
    assert stored.dtype == np.float16
    assert np.array_equal(stored == 0, ~mask.numpy())  # float16 keeps every pruned weight an exact zero
    assert sparsity.block_density(torch.from_numpy(stored.astype(np.float32))) == 0.25


def test_ddp_ranks_prune_identically(data, tmp_path):
    """Two gloo ranks: the mask is rank 0's on both, and the run ends at the target density."""
    import os
    import socket

    out = tmp_path / "ddp"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "pnsc.training.lpcnet.train", *_args(data, out, *SPARSE, "--max-steps", "3")]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = torch.load(out / "last.pt", weights_only=False)
    assert "x2" in r.stderr and ck["step"] == 3
    w = ck["model"]["gru_a.weight_hh_l0"]
    assert sparsity.block_density(w) == 0.25 and torch.equal(w == 0, ~ck["sparse"]["mask"])
