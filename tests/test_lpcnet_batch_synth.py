"""Batched synthesis (used to score every decoder on the GPU) against the step-by-step reference,
and float16-weight ONNX export against the float32 one."""
import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx", reason="training extra (onnx) not installed")
torch = pytest.importorskip("torch", reason="training extra (torch) not installed")

from pnsc.shared.dsp import deemphasize  # noqa: E402
from pnsc.shared.lpc import lpc_from_cepstrum
from pnsc.training.lpcnet.batch_synth import synthesize_batch
from pnsc.training.lpcnet.model import LPCNet, config_for, synthesize
from pnsc.training.lpcnet.onnx_fp16 import halve_initializers
from pnsc.training.lpcnet.export import build_frame_graph


def _features(seed: int, frames: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 1, (frames, 20)).astype(np.float32)
    f[:, 0] += 6.0
    f[:, 18] = rng.uniform(40, 200, frames)
    f[:, 19] = rng.uniform(0, 1, frames)
    return f


@pytest.mark.parametrize("taps,gate", [(0, 0.0), (5, 0.0), (5, 0.5)])
def test_batched_synthesis_matches_the_reference_loop(taps, gate):
    """With ``gate``: the features' pitch correlations are uniform in [0, 1), so frames on both sides."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = LPCNet(config_for("tiny", taps, gate)).eval()
    if taps:
        with torch.no_grad():  # taps that matter
            model.gru_a.weight_ih_l0[:, 24:64].normal_(0, 1.0)
    feats = [_features(1, 4), _features(2, 8)]
    out = synthesize_batch(model, feats, seed=5)
    assert [len(y) for y in out] == [640, 1280]
    # The reference decodes one utterance with the same uniforms and the same edge padding.
    T = 8
    uniforms = torch.rand(T * 160, 2, generator=torch.Generator().manual_seed(5))[:, 1]
    f = feats[1]
    padded = np.concatenate([f[:1], f[:1], f, f[-1:], f[-1:]])
    lpc = lpc_from_cepstrum(padded[2 : T + 2, :18])
    ref = synthesize(model, torch.from_numpy(padded), torch.from_numpy(lpc), uniforms).numpy()
    ref = np.clip(deemphasize(np.clip(ref, -32768, 32767))[0] / 32768.0, -1, 1)
    np.testing.assert_allclose(out[1], ref, atol=2e-3)
    assert np.corrcoef(out[1], ref)[0, 1] > 0.999


def test_float16_weights_export_is_close_and_smaller(tmp_path):
    torch.manual_seed(0)
    model = LPCNet(config_for("S")).eval()
    full = build_frame_graph(model)
    half = halve_initializers(build_frame_graph(model))
    onnx.save(full, tmp_path / "f32.onnx")
    onnx.save(half, tmp_path / "f16.onnx")
    assert (tmp_path / "f16.onnx").stat().st_size < 0.6 * (tmp_path / "f32.onnx").stat().st_size
    x = _features(3, 12)[None]
    a = ort.InferenceSession(str(tmp_path / "f32.onnx")).run(None, {"features": x})[0]
    b = ort.InferenceSession(str(tmp_path / "f16.onnx")).run(None, {"features": x})[0]
    assert np.all(np.isfinite(b))
    assert np.max(np.abs(a - b)) < 5e-3
    assert not np.array_equal(a, b)  # the weights really were rounded
