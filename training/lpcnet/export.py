"""Export a trained LPCNet checkpoint to ONNX (hand-built graphs; no torch needed to run them).

Two files per decoder:
- ``<name>.frame.onnx``: frame-rate network. input ``features`` (B, F+4, 20) raw features
  (2 frames of context each side) -> ``cond`` (B, F, 128).
- ``<name>.onnx``: sample-rate network. Its weights are initializers under their PyTorch names
  (``embed.weight``, ``gru_a.weight_ih_l0``, ..., ``dual_fc.factor``); the graph is the reference
  160-sample frame loop (an ONNX Loop) that onnxruntime runs:
    inputs  cond (1, C), lpc (16), corr (1) [pitch correlation, sets the sampling temperature],
            uniforms (160) [U(0,1) draws of a seeded RNG], ha (1, N), hb (1, NB),
            hist (16) [previous output samples, most recent first], exc (1) int64 [previous excitation]
    outputs pcm (160) [pre-emphasized int16-scale samples], ha_out, hb_out, hist_out, exc_out
  A model with LTP taps (``ltp_taps`` > 0, metadata key ``ltp_taps``) has two more inputs and one more output:
            period (1) [the frame's raw pitch period feature, column 18; lag = clamp(floor(period + 0.5), 32, 255)],
            past (LTP_HISTORY = 264) int64 [the excitations drawn before this frame, oldest first, 128 before
            the start of the decode] -> past_out (264) int64 (the history after the frame);
  GRU-A's input rows are then [E[sig], E[pred], E[exc], E[e[n - lag + d_k]] for each tap k, cond].
  A voicing gate (``ltp_gate`` > 0, metadata key ``ltp_gate``) adds no input: when ``corr`` < ltp_gate (float32)
  every tap of the frame reads 128 instead (``past`` still records the frame's draws).
  Sampling (LPCNet): softmax(logits * (1 + max(0, 1.5 corr - 0.5))), PDF_FLOOR subtracted (floored at 0;
  the runtime rewrites this constant for another ``pdf_floor``, pnsc.receiver.sampling),
  inverse CDF at ``uniforms[n]``.  sample x[n] = clip(u[n] + ulaw2lin(e[n]), -32768, 32767).
- ``export_step`` builds a single-step graph (probabilities) used by the tests.

    python -m pnsc.training.lpcnet.export CKPT OUT_DIR [--name NAME]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from pnsc.shared.constants import LTP_HISTORY, LTP_MAX_LAG, LTP_MIN_LAG

from .model import FRAME_SIZE, LPC_ORDER, PDF_FLOOR, LPCNet, LPCNetConfig, load_checkpoint, tap_offsets

OPSET = 17
IR_VERSION = 8
F32, I64 = TensorProto.FLOAT, TensorProto.INT64


class G:
    """Tiny graph builder."""

    def __init__(self, prefix: str = ""):
        self.nodes: list = []
        self.inits: list = []
        self.prefix = prefix
        self.k = 0

    def name(self, hint="t"):
        self.k += 1
        return f"{self.prefix}{hint}_{self.k}"

    def op(self, op_type, inputs, hint=None, n_out=1, **attrs):
        outs = [self.name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype=np.float32, hint="c"):
        n = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def init(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


# ---------------------------------------------------------------- frame-rate network
def build_frame_graph(model: LPCNet) -> onnx.ModelProto:
    fn = model.frame_net
    g = G("f_")
    for k, v in fn.state_dict().items():
        g.init(f"frame_net.{k}", _np(v))
    feats = "features"
    period = g.op("Gather", [feats, g.const(18, np.int64)], axis=2)
    idx = g.op("Cast", [g.op("Clip", [g.op("Floor", [g.op("Add", [period, g.const(0.5)])]),
                                      g.const(0.0), g.const(255.0)])], to=I64)
    pe = g.op("Gather", ["frame_net.pitch_embedding.weight", idx], axis=0)
    norm = g.op("Mul", [g.op("Sub", [feats, g.const(_np(fn.feat_offset))]), g.const(_np(fn.feat_scale))])
    x = g.op("Transpose", [g.op("Concat", [norm, pe], axis=2)], perm=[0, 2, 1])
    x = g.op("Tanh", [g.op("Conv", [x, "frame_net.conv1.weight", "frame_net.conv1.bias"])])
    x = g.op("Tanh", [g.op("Conv", [x, "frame_net.conv2.weight", "frame_net.conv2.bias"])])
    x = g.op("Transpose", [x], perm=[0, 2, 1])
    for fc in ("fc1", "fc2"):
        wt = g.op("Transpose", [f"frame_net.{fc}.weight"], perm=[1, 0])
        x = g.op("Tanh", [g.op("Add", [g.op("MatMul", [x, wt]), f"frame_net.{fc}.bias"])])
    g.nodes.append(helper.make_node("Identity", [x], ["cond"]))
    C = model.cfg.cond
    graph = helper.make_graph(
        g.nodes, "lpcnet_frame_rate",
        [helper.make_tensor_value_info("features", F32, ["B", "F4", 20])],
        [helper.make_tensor_value_info("cond", F32, ["B", "F", C])], g.inits)
    return _model(graph, model.cfg)


# ---------------------------------------------------------------- sample-rate network pieces
SAMPLE_KEYS = ("embed.weight", "gru_a.weight_ih_l0", "gru_a.weight_hh_l0", "gru_a.bias_ih_l0", "gru_a.bias_hh_l0",
               "gru_b.weight_ih_l0", "gru_b.weight_hh_l0", "gru_b.bias_ih_l0", "gru_b.bias_hh_l0",
               "dual_fc.weight", "dual_fc.bias", "dual_fc.factor")


class SampleWeights:
    """Initializers (PyTorch names) + derived outer-scope tensors (transposed / sliced)."""

    def __init__(self, g: G, model: LPCNet):
        c = model.cfg
        sd = model.state_dict()
        for k in SAMPLE_KEYS:
            g.init(k, _np(sd[k]))
        E3 = c.sample_inputs * c.embed  # sig, pred, exc and the LTP taps
        self.cfg = c

        def T(x):
            return g.op("Transpose", [x], perm=[1, 0])

        def cols(x, a, b):
            return g.op("Slice", [x, g.const([a], np.int64), g.const([b], np.int64), g.const([1], np.int64)])

        self.wa_e = T(cols("gru_a.weight_ih_l0", 0, E3))  # ((3 + taps) E, 3N)
        self.wa_c = T(cols("gru_a.weight_ih_l0", E3, E3 + c.cond))  # (C, 3N)
        self.wa_h = T("gru_a.weight_hh_l0")  # (N, 3N)
        self.wb_h = T(cols("gru_b.weight_ih_l0", 0, c.gru_a))  # (N, 3NB)
        self.wb_c = T(cols("gru_b.weight_ih_l0", c.gru_a, c.gru_a + c.cond))
        self.wb_hh = T("gru_b.weight_hh_l0")
        self.wd = T(g.op("Reshape", ["dual_fc.weight", g.const([2 * 256, c.gru_b], np.int64)]))  # (NB, 512)
        self.bd = g.op("Reshape", ["dual_fc.bias", g.const([2 * 256], np.int64)])
        self.fd = g.op("Reshape", ["dual_fc.factor", g.const([2 * 256], np.int64)])

    def cond_terms(self, g: G, cond: str):
        ga = g.op("Add", [g.op("MatMul", [cond, self.wa_c]), "gru_a.bias_ih_l0"])
        gb = g.op("Add", [g.op("MatMul", [cond, self.wb_c]), "gru_b.bias_ih_l0"])
        return ga, gb


def _gru(g: G, gi: str, h: str, w_hh: str, b_hh: str, n: int) -> str:
    gh = g.op("Add", [g.op("MatMul", [h, w_hh]), b_hh])
    sizes = g.const([n, n, n], np.int64)
    ir, iz, inn = g.op("Split", [gi, sizes], n_out=3, axis=1)
    hr, hz, hn = g.op("Split", [gh, sizes], n_out=3, axis=1)
    r = g.op("Sigmoid", [g.op("Add", [ir, hr])])
    z = g.op("Sigmoid", [g.op("Add", [iz, hz])])
    nn_ = g.op("Tanh", [g.op("Add", [inn, g.op("Mul", [r, hn])])])
    return g.op("Add", [nn_, g.op("Mul", [z, g.op("Sub", [h, nn_])])])


def _step_logits(g: G, W: SampleWeights, ids: str, ga_cond: str, gb_cond: str, ha: str, hb: str):
    """ids (3 + taps,) int64 [sig, pred, exc, taps...] -> (logits (256,), ha', hb')."""
    c = W.cfg
    emb = g.op("Reshape", [g.op("Gather", ["embed.weight", ids], axis=0),
                           g.const([1, c.sample_inputs * c.embed], np.int64)])
    gia = g.op("Add", [g.op("MatMul", [emb, W.wa_e]), ga_cond])
    ha2 = _gru(g, gia, ha, W.wa_h, "gru_a.bias_hh_l0", c.gru_a)
    gib = g.op("Add", [g.op("MatMul", [ha2, W.wb_h]), gb_cond])
    hb2 = _gru(g, gib, hb, W.wb_hh, "gru_b.bias_hh_l0", c.gru_b)
    y = g.op("Mul", [g.op("Tanh", [g.op("Add", [g.op("MatMul", [hb2, W.wd]), W.bd])]), W.fd])
    logits = g.op("ReduceSum", [g.op("Reshape", [y, g.const([2, 256], np.int64)]), g.const([0], np.int64)],
                  keepdims=0)
    return logits, ha2, hb2


def _lin2ulaw_index(g: G, v: str) -> str:
    a = g.op("Abs", [v])
    l = g.op("Log", [g.op("Add", [g.const(1.0), g.op("Mul", [a, g.const(255.0 / 32768.0)])])])
    u = g.op("Add", [g.const(128.0), g.op("Mul", [g.op("Sign", [v]), g.op("Mul", [l, g.const(128.0 / math.log(256.0))])])])
    u = g.op("Clip", [g.op("Floor", [g.op("Add", [u, g.const(0.5)])]), g.const(0.0), g.const(255.0)])
    return g.op("Cast", [u], to=I64)


def _ulaw2lin(g: G, idx_f: str) -> str:
    d = g.op("Sub", [idx_f, g.const(128.0)])
    mag = g.op("Sub", [g.op("Exp", [g.op("Mul", [g.op("Abs", [d]), g.const(math.log(256.0) / 128.0)])]), g.const(1.0)])
    return g.op("Mul", [g.op("Mul", [g.op("Sign", [d]), g.const(32768.0 / 255.0)]), mag])


def build_loop_graph(model: LPCNet) -> onnx.ModelProto:
    c = model.cfg
    g = G("o_")
    W = SampleWeights(g, model)
    ga_cond, gb_cond = W.cond_terms(g, "cond")
    boost = g.op("Add", [g.const(1.0), g.op("Relu", [g.op("Sub", [g.op("Mul", ["corr", g.const(1.5)]),
                                                                  g.const(0.5)])])])
    taps = c.ltp_taps
    if taps:  # indices of the taps in the shifting history: H - lag + d_k at every step of the frame
        lag = g.op("Cast", [g.op("Clip", [g.op("Floor", [g.op("Add", ["period", g.const(0.5)])]),
                                          g.const(float(LTP_MIN_LAG)), g.const(float(LTP_MAX_LAG))])], to=I64)
        tap_idx = g.op("Add", [g.op("Sub", [g.const([LTP_HISTORY], np.int64), lag]),
                               g.const(tap_offsets(taps), np.int64)])
        if c.ltp_gate:  # voicing gate: the frame's taps read mu-law zero when corr < gate
            gated = g.op("Less", ["corr", g.const([c.ltp_gate])])
            zeros = g.const([128] * taps, np.int64)
    # ---- loop body
    b = G("b_")
    it, cin = "iter", "cond_in"
    ha, hb, hist, exc, past = "ha_in", "hb_in", "hist_in", "exc_in", "past_in"
    u = b.op("ReduceSum", [b.op("Mul", ["lpc", hist]), b.const([0], np.int64)], keepdims=1)  # (1,)
    prev = b.op("Slice", [hist, b.const([0], np.int64), b.const([1], np.int64)])
    ids = [_lin2ulaw_index(b, prev), _lin2ulaw_index(b, u), exc]
    if taps:
        lagged = b.op("Gather", [past, tap_idx], axis=0)
        ids.append(b.op("Where", [gated, zeros, lagged]) if c.ltp_gate else lagged)
    ids = b.op("Concat", ids, axis=0)
    logits, ha2, hb2 = _step_logits(b, W, ids, ga_cond, gb_cond, ha, hb)
    p = b.op("Softmax", [b.op("Mul", [logits, boost])], axis=0)
    p = b.op("Relu", [b.op("Sub", [p, b.const(PDF_FLOOR)])])
    cdf = b.op("CumSum", [p, b.const(0, np.int64)])
    r = b.op("Gather", ["uniforms", b.op("Reshape", [it, b.const([1], np.int64)])], axis=0)  # (1,)
    thr = b.op("Mul", [r, b.op("ReduceSum", [p, b.const([0], np.int64)], keepdims=1)])
    cnt = b.op("ReduceSum", [b.op("Cast", [b.op("Less", [cdf, thr])], to=F32), b.const([0], np.int64)], keepdims=1)
    idx_f = b.op("Min", [cnt, b.const([255.0])])
    x = b.op("Clip", [b.op("Add", [u, _ulaw2lin(b, idx_f)]), b.const(-32768.0), b.const(32767.0)])  # (1,)
    hist2 = b.op("Concat", [x, b.op("Slice", [hist, b.const([0], np.int64), b.const([LPC_ORDER - 1], np.int64)])],
                 axis=0)
    b.nodes += [helper.make_node("Identity", [cin], ["cond_out"]),
                helper.make_node("Identity", [ha2], ["ha_next"]),
                helper.make_node("Identity", [hb2], ["hb_next"]),
                helper.make_node("Identity", [hist2], ["hist_next"]),
                helper.make_node("Cast", [idx_f], ["exc_next"], to=I64),
                helper.make_node("Identity", [x], ["x_scan"])]
    vi = helper.make_tensor_value_info
    body_in = [vi(it, I64, []), vi(cin, TensorProto.BOOL, []), vi(ha, F32, [1, c.gru_a]), vi(hb, F32, [1, c.gru_b]),
               vi(hist, F32, [LPC_ORDER]), vi(exc, I64, [1])]
    body_out = [vi("cond_out", TensorProto.BOOL, []), vi("ha_next", F32, [1, c.gru_a]),
                vi("hb_next", F32, [1, c.gru_b]), vi("hist_next", F32, [LPC_ORDER]), vi("exc_next", I64, [1])]
    carried = ["ha", "hb", "hist", "exc"]
    outs = ["ha_out", "hb_out", "hist_out", "exc_out"]
    inputs = [vi("cond", F32, [1, c.cond]), vi("lpc", F32, [LPC_ORDER]), vi("corr", F32, [1])]
    outputs = [vi("pcm", F32, [FRAME_SIZE]), vi("ha_out", F32, [1, c.gru_a]), vi("hb_out", F32, [1, c.gru_b]),
               vi("hist_out", F32, [LPC_ORDER]), vi("exc_out", I64, [1])]
    if taps:  # the excitation history shifts by one each step: the drawn excitation enters at the end
        b.nodes.append(helper.make_node("Concat", [b.op("Slice", [past, b.const([1], np.int64),
                                                                  b.const([LTP_HISTORY], np.int64)]), "exc_next"],
                                        ["past_next"], axis=0))
        body_in.append(vi(past, I64, [LTP_HISTORY]))
        body_out.append(vi("past_next", I64, [LTP_HISTORY]))
        carried.append("past")
        outs.append("past_out")
        inputs.append(vi("period", F32, [1]))
        outputs.append(vi("past_out", I64, [LTP_HISTORY]))
    body = helper.make_graph(b.nodes, "frame_loop_body", body_in, body_out + [vi("x_scan", F32, [1])], b.inits)
    trip = g.const(FRAME_SIZE, np.int64, "trip")
    true = g.name("true")
    g.inits.append(numpy_helper.from_array(np.array(True), true))
    outs.append(g.name("pcm_scan"))
    g.nodes.append(helper.make_node("Loop", [trip, true] + carried, outs, body=body))
    g.nodes.append(helper.make_node("Reshape", [outs[-1], g.const([FRAME_SIZE], np.int64)], ["pcm"]))
    inputs += [vi("uniforms", F32, [FRAME_SIZE]), vi("ha", F32, [1, c.gru_a]), vi("hb", F32, [1, c.gru_b]),
               vi("hist", F32, [LPC_ORDER]), vi("exc", I64, [1])]
    if taps:
        inputs.append(vi("past", I64, [LTP_HISTORY]))
    graph = helper.make_graph(g.nodes, "lpcnet_frame_loop", inputs, outputs, g.inits)
    return _model(graph, c)


def build_step_graph(model: LPCNet) -> onnx.ModelProto:
    """One sample step: cond (1,C), ids (3 + taps,) int64 [sig, pred, exc, LTP taps...], ha, hb -> probs (256,),
    ha_out, hb_out."""
    c = model.cfg
    g = G("s_")
    W = SampleWeights(g, model)
    ga, gb = W.cond_terms(g, "cond")
    logits, ha2, hb2 = _step_logits(g, W, "ids", ga, gb, "ha", "hb")
    g.nodes += [helper.make_node("Softmax", [logits], ["probs"], axis=0),
                helper.make_node("Identity", [ha2], ["ha_out"]), helper.make_node("Identity", [hb2], ["hb_out"])]
    graph = helper.make_graph(
        g.nodes, "lpcnet_step",
        [helper.make_tensor_value_info("cond", F32, [1, c.cond]), helper.make_tensor_value_info("ids", I64, [c.sample_inputs]),
         helper.make_tensor_value_info("ha", F32, [1, c.gru_a]), helper.make_tensor_value_info("hb", F32, [1, c.gru_b])],
        [helper.make_tensor_value_info("probs", F32, [256]),
         helper.make_tensor_value_info("ha_out", F32, [1, c.gru_a]),
         helper.make_tensor_value_info("hb_out", F32, [1, c.gru_b])],
        g.inits)
    return _model(graph, c)


def _model(graph, cfg: LPCNetConfig) -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pnsc")
    m.ir_version = IR_VERSION
    for k, v in cfg.to_dict().items():
        m.metadata_props.append(onnx.StringStringEntryProto(key=k, value=str(v)))
    onnx.checker.check_model(m)
    return m


# ---------------------------------------------------------------- checkpoints -> files
def export_model(model: LPCNet, out_dir, name: str, extra_meta: dict | None = None,
                 fp16_weights: bool = False) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"frame": out_dir / f"{name}.frame.onnx", "sample": out_dir / f"{name}.onnx"}
    for kind, builder in (("frame", build_frame_graph), ("sample", build_loop_graph)):
        m = builder(model)
        for k, v in (extra_meta or {}).items():
            m.metadata_props.append(onnx.StringStringEntryProto(key=str(k), value=str(v)))
        if fp16_weights:
            from .onnx_fp16 import halve_initializers

            m = halve_initializers(m)
            m.metadata_props.append(onnx.StringStringEntryProto(key="weights", value="float16 (computed in float32)"))
        onnx.save(m, files[kind])
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--name", default=None)
    a = ap.parse_args(argv)
    model, ck = load_checkpoint(a.checkpoint)
    name = a.name or ck.get("name", "lpcnet")
    from .sparsity import export_notes  # a block-sparse GRU-A: its density in the metadata

    files = export_model(model, a.out_dir, name, {"name": name, "step": ck.get("step"),
                                                  **export_notes(model.gru_a.weight_hh_l0)})
    for k, p in files.items():
        print(f"{k}: {p} ({p.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
