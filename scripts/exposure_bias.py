#!/usr/bin/env python3
"""Why decoded quality does not follow the training loss: free-running versus teacher-forced decoding.

Decodes the same clips (validation speakers, and with ``--train-shard`` training speakers; never test
material) from one checkpoint's quantized 1.6 kb/s features in these modes, scores each against the
reference (PESQ-WB, STOI, ESTOI, DNSMOS OVRL) and prints means with paired differences to mode A (95 % CI):

  A  free_running   the shipped runtime: the checkpoint exported to ONNX, decoded by the C sample loop
                    (StreamingDecoder), its own past samples fed back;
     torch_free_running  the same loop in the torch model (training.lpcnet.batch_synth; float32 weights):
                    checks that the export and C loop decode what the checkpoint does;
  B  tf_sampled     teacher forced: every sample sees the TRUE past (previous signal, previous excitation,
                    LPC prediction p_t from the true past; the training forward pass without noise), draws
                    e_t with the runtime's rule (pitch-correlation boost, floor PDF_FLOOR), s_t = p_t + e_t;
     tf_sampled_sharp2   as B with the logits doubled on top of the boost (half the temperature);
  C  tf_mean        teacher forced, s_t = p_t + E[e_t] (model distribution, no boost/floor);
     tf_mode        teacher forced, s_t = p_t + argmax e_t;
  D  lpc_only       s_t = p_t (true past, zero excitation);
     true_exc       s_t = p_t + mu-law(true excitation): the feature/LPC/mu-law/de-emphasis chain with
                    the true excitation (checks chain and alignment; should score near the ceiling).

Also the teacher-forced per-sample cross-entropy of the true excitation (nats; ties back to the training
loss) and the model distribution's mean entropy, per clip set.

    python scripts/exposure_bias.py [--checkpoint runs/r5/lpcnet-bl-s/last.pt] [--limit 10]
        [--train-limit 6] [--max-seconds 5] [--json docs/figures/round5/exposure_bias.json]
        [--group G --train-shard data/audio_shards/audio-train-0000[0-4].tar]

``--group G`` takes the clips of group G's speakers only (``models/training_groups.json``, the grouping the
decoders trained on), for a personalized decoder on its own talkers; the training-speaker clips then come from
as many of the ``--train-shard`` files as it takes to reach ``--train-limit``.

Interpretation: B far above A -> free-running error accumulation (exposure bias) limits quality; B about
as low as A -> the per-sample distribution itself (its width) or the metrics' view of a sampled waveform
does; C and D bound what the chain can reach.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

METRICS = ("pesq_wb", "stoi", "estoi", "dnsmos_ovrl")
MODES = ("A_free_running", "A_torch_free_running", "B_tf_sampled", "B_tf_sampled_sharp2", "C_tf_mean", "C_tf_mode", "D_lpc_only", "D_true_exc")


def _die(msg: str) -> None:
    print(f"pnsc: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def snr_db(ref: np.ndarray, deg: np.ndarray) -> float:
    """Sample-exact SNR (no alignment; meaningful only for the teacher-forced modes)."""
    n = min(len(ref), len(deg))
    err = np.sum((ref[:n].astype(np.float64) - deg[:n]) ** 2)
    return float(10 * np.log10(np.sum(ref[:n].astype(np.float64) ** 2) / max(err, 1e-20)))


def export_checkpoint(ckpt: Path, name: str, tmp: Path):
    """The checkpoint as the runtime decoder ``name`` in its own models folder -> StreamingDecoder."""
    sys.path.insert(0, str(REPO / "scripts"))
    from compare_branches import export_alone

    from pnsc.receiver.runtime.stream import StreamingDecoder

    run = tmp / "ckpt"
    run.mkdir()
    (run / "last.pt").symlink_to(ckpt.resolve())
    models, family, group = export_alone(run, name, tmp, "ckpt")
    return StreamingDecoder(family, group, models_dir=models)


def quantized_features(audio: np.ndarray) -> np.ndarray:
    """The 1.6 kb/s bitstream's dequantized features of a clip."""
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    return quantize_features(extract_features(audio))[1]


def decode_modes(model, dec, audio: np.ndarray, qf: np.ndarray, seed: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every teacher-forced mode's and the runtime's float32 output for one clip, and its loss statistics."""
    import torch

    from pnsc.training.lpcnet.teacher_forced import (excitation_to_pcm, expected_excitation, sample_excitation,
                                                     teacher_forced_pass, voicing_stats)

    n = len(audio)
    dec.reset()
    out = {"A_free_running": (dec.decode(qf)[:n].astype(np.float32) / 32768.0)}
    tf = teacher_forced_pass(model, qf, audio)
    g = torch.Generator().manual_seed(seed)
    uniforms = torch.rand(len(tf.pred), generator=g)
    out["B_tf_sampled"] = excitation_to_pcm(tf.pred, sample_excitation(tf.logits, tf.boost, uniforms))
    out["B_tf_sampled_sharp2"] = excitation_to_pcm(tf.pred, sample_excitation(tf.logits, 2.0 * tf.boost, uniforms))
    out["C_tf_mean"] = excitation_to_pcm(tf.pred, expected_excitation(tf.logits), linear=True)
    out["C_tf_mode"] = excitation_to_pcm(tf.pred, tf.logits.argmax(-1))
    out["D_lpc_only"] = excitation_to_pcm(tf.pred, torch.zeros_like(tf.pred), linear=True)
    out["D_true_exc"] = excitation_to_pcm(tf.pred, tf.target)
    stats = voicing_stats(tf)
    # the same draw's excitation cross-entropy under the runtime's sampling distribution (boost + floor)
    p = torch.clamp(torch.softmax(tf.logits * tf.boost[:, None], -1) - _floor(), min=0.0)
    p = p / p.sum(-1, keepdim=True)
    stats["cross_entropy_sampling_dist"] = float(-torch.log(p.gather(1, tf.target[:, None]).clamp_min(1e-12)).mean())
    return {k: v[:n] for k, v in out.items()}, stats


def _floor() -> float:
    from pnsc.shared.constants import PDF_FLOOR

    return PDF_FLOOR


def group_speakers(groups: Path, group: int) -> set[str]:
    """The speakers of ``group`` in a training grouping (speaker -> group)."""
    from pnsc.training.lpcnet.data import load_group_map

    gmap = load_group_map(groups)
    if group not in set(gmap.values()):
        _die(f"no speakers of group {group} in {groups}")
    return {s for s, g in gmap.items() if g == group}


def run_set(name, clips, model, dec, scorer, seed) -> dict:
    from pnsc.evaluation.stats import paired_table
    from pnsc.training.lpcnet.batch_synth import synthesize_batch

    scores = {m: {k: [] for k in (*METRICS, "snr_db")} for m in MODES}
    losses: dict[str, list[float]] = {}
    extra = {"A_dnsmos_ovrl_int16_scale_input": []}
    t0 = time.monotonic()
    qfs = [quantized_features(c[2]) for c in clips]
    print(f"[{name}] torch free-running decode of {len(clips)} clips (batched) ...", file=sys.stderr, flush=True)
    torch_out = synthesize_batch(model, qfs, seed=seed + 1000)
    for i, (utt, _spk, audio) in enumerate(clips):
        outs, st = decode_modes(model, dec, audio, qfs[i], seed + i)
        outs["A_torch_free_running"] = torch_out[i][:len(audio)]
        for k, v in st.items():
            losses.setdefault(k, []).append(v)
        for mode, y in outs.items():
            sc = scorer.score(audio, y)
            for m in METRICS:
                scores[mode][m].append(float(sc[m]))
            scores[mode]["snr_db"].append(snr_db(audio, y))
        # what scripts that pass the decoder's int16 output straight to the scorer get for DNSMOS
        extra["A_dnsmos_ovrl_int16_scale_input"].append(scorer.dnsmos(outs["A_free_running"] * 32768.0)["dnsmos_ovrl"])
        print(f"[{name} {i + 1}/{len(clips)}] {utt}: CE {st['cross_entropy']:.3f} nats, "
              f"PESQ A {scores['A_free_running']['pesq_wb'][-1]:.2f} B {scores['B_tf_sampled']['pesq_wb'][-1]:.2f} "
              f"C {scores['C_tf_mean']['pesq_wb'][-1]:.2f} D {scores['D_true_exc']['pesq_wb'][-1]:.2f} "
              f"({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
    print(f"\n{name} speakers, {len(clips)} clips; means, paired difference to A (95 % CI, wins/n)")
    print("\n".join(paired_table(scores, MODES[0], (*METRICS, "snr_db"), label="mode")))
    print("teacher-forced statistics (CE, entropy: nats/sample; pred_gain: dB; mean over clips): "
          + ", ".join(f"{k} {np.nanmean(v):.3f}" for k, v in losses.items()))
    return {"clips": [c[0] for c in clips], "speakers": [c[1] for c in clips], "scores": scores,
            "teacher_forced_loss": {k: {"per_clip": v, "mean": float(np.nanmean(v))} for k, v in losses.items()},
            **extra}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=REPO / "runs" / "r5" / "lpcnet-bl-s" / "last.pt")
    p.add_argument("--name", default=None, help="decoder name for the export (default: the checkpoint's)")
    p.add_argument("--val-shard", type=Path, default=REPO / "data" / "audio_shards" / "audio-validation-00000.tar")
    p.add_argument("--train-shard", type=Path, nargs="+", default=[REPO / "data" / "audio_shards" / "audio-train-00004.tar"])
    p.add_argument("--group", type=int, default=None, help="only the clips of this group's speakers")
    p.add_argument("--groups", type=Path, default=REPO / "models" / "training_groups.json")
    p.add_argument("--limit", type=int, default=10, help="validation clips")
    p.add_argument("--train-limit", type=int, default=6, help="training-speaker clips (0: none)")
    p.add_argument("--max-seconds", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=REPO / "docs" / "figures" / "round5" / "exposure_bias.json")
    a = p.parse_args(argv)
    for f in (a.checkpoint, a.val_shard, *(a.train_shard if a.train_limit else ())):
        if not f.is_file():
            _die(f"no such file: {f}")
    if any("test" in f.name for f in (a.val_shard, *a.train_shard)):
        _die("test material is not for diagnostics")

    import torch

    torch.set_num_threads(1)
    from pnsc.evaluation.metrics import Scorer
    from pnsc.training.lpcnet.export import load_checkpoint
    from pnsc.training.lpcnet.val_clips import validation_clips

    model, ck = load_checkpoint(a.checkpoint)
    name = a.name or ck.get("name") or "lpcnet-bl-s"
    spk = group_speakers(a.groups, a.group) if a.group is not None else None
    sets = {"validation": validation_clips(a.val_shard, a.limit, a.max_seconds, speakers=spk)}
    if a.train_limit:
        sets["training"] = []
        for shard in a.train_shard:
            left = a.train_limit - len(sets["training"])
            if left > 0:
                sets["training"] += validation_clips(shard, left, a.max_seconds, source="librispeech", speakers=spk)
    for set_name, clips in sets.items():
        if not clips:
            _die(f"no {set_name} clips" + (f" of group {a.group}'s speakers" if a.group is not None else ""))
    scorer = Scorer(metrics=METRICS)
    result = {"checkpoint": str(a.checkpoint), "name": name, "step": ck.get("step"), "group": a.group,
              "val_loss_logged": ck.get("val_loss", ck.get("best_val")), "seed": a.seed,
              "max_seconds": a.max_seconds, "modes": MODES, "A_decoder": "shipped C sample loop (StreamingDecoder) "
              "on this checkpoint's export by scripts/export_decoders.py", "sets": {}}
    with tempfile.TemporaryDirectory() as d:
        dec = export_checkpoint(a.checkpoint, name, Path(d))
        result["A_kernel"], result["A_precision"] = dec.kernel, dec.precision
        for set_name, clips in sets.items():
            result["sets"][set_name] = run_set(set_name, clips, model, dec, scorer, a.seed)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
