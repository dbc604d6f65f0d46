"""Packet-loss concealment in the feature domain: the decoder keeps running on extrapolated frames.

:class:`Concealer` watches every real feature frame (``observe``) and, while packets are missing,
makes the next frame (``conceal``):

- the envelope (c1..c17) of the last good frame is repeated; its energy c0 holds for the first
  40 ms and then decays (``decay_db_per_frame``), never below the comfort-noise level;
- the pitch period is kept; the pitch correlation decays, so voicing fades out;
- after ``cn_after_frames`` the whole frame glides towards comfort noise (the running average of
  the quietest recent frames, or a faint default), which it reaches ``cn_glide_frames`` later;
- when packets return, ``recover`` blends the first ``recover_frames`` real frames with the
  extrapolation so the decoder's input has no step.

LPCNet's bitstream keeps loss propagation to 30 ms: the first real packet after a loss is decoded
against the concealed frame 3 (``reference_frame3``) instead of the lost packet's, which only
touches that packet's frames 0..2.
"""
from __future__ import annotations

import numpy as np

from pnsc.shared.constants import CORR_INDEX, FEATURE_DIM, NB_CEPS, PERIOD_INDEX, PITCH_MIN

C0_PER_DB = np.sqrt(NB_CEPS) / 10.0  # a uniform 1 dB change of every band moves c0 by this much
DEFAULT_CN_C0 = -9.0  # faint noise (about 55 dB below loud speech) when no quiet frame was seen


class Concealer:
    def __init__(self, *, hold_frames: int = 4, decay_db_per_frame: float = 1.5, corr_decay: float = 0.9,
                 cn_after_frames: int = 8, cn_glide_frames: int = 24, recover_frames: int = 2) -> None:
        self.hold_frames, self.decay_db = hold_frames, decay_db_per_frame
        self.corr_decay, self.cn_after, self.cn_glide = corr_decay, cn_after_frames, cn_glide_frames
        self.recover_frames = recover_frames
        self.last: np.ndarray | None = None  # last real frame
        self.prev_out: np.ndarray | None = None  # last frame handed to the decoder
        self.lost_run = 0  # consecutive concealed frames
        self._recovering = 0
        cn = np.zeros(FEATURE_DIM, np.float32)
        cn[0] = DEFAULT_CN_C0
        cn[PERIOD_INDEX] = PITCH_MIN
        self.cn = cn
        self._quiet: list[np.ndarray] = []
        self._c0_hist: list[float] = []

    def reset(self) -> None:
        self.__init__(hold_frames=self.hold_frames, decay_db_per_frame=self.decay_db,
                      corr_decay=self.corr_decay, cn_after_frames=self.cn_after,
                      cn_glide_frames=self.cn_glide, recover_frames=self.recover_frames)

    # -- real frames ------------------------------------------------------------------------------
    def observe(self, frame: np.ndarray) -> np.ndarray:
        """Take a real frame; returns the frame to decode (blended right after a loss)."""
        f = np.asarray(frame, np.float32)
        self._track_noise(f)
        out = f
        if self.lost_run > 0:
            self._recovering = self.recover_frames
        if self._recovering > 0 and self.prev_out is not None:
            w = self._recovering / (self.recover_frames + 1.0)  # weight of the extrapolation
            out = f.copy()
            out[:NB_CEPS] = w * self.prev_out[:NB_CEPS] + (1 - w) * f[:NB_CEPS]
            self._recovering -= 1
        self.lost_run = 0
        self.last = f
        self.prev_out = out
        return out

    def _track_noise(self, f: np.ndarray) -> None:
        self._c0_hist.append(float(f[0]))
        if len(self._c0_hist) > 300:
            del self._c0_hist[:100]
        floor = np.percentile(self._c0_hist, 10) if len(self._c0_hist) >= 20 else None
        if floor is not None and f[0] <= floor + 1.0 and f[CORR_INDEX] < 0.5:
            self._quiet.append(f)
            if len(self._quiet) > 50:
                del self._quiet[:10]
            cn = np.mean(self._quiet, axis=0).astype(np.float32)
            cn[PERIOD_INDEX], cn[CORR_INDEX] = PITCH_MIN, 0.0
            self.cn = cn

    # -- missing frames ---------------------------------------------------------------------------
    def conceal(self) -> np.ndarray:
        """The next extrapolated frame."""
        self.lost_run += 1
        k = self.lost_run
        if self.last is None:  # nothing heard yet: comfort noise
            out = self.cn.copy()
            self.prev_out = out
            return out
        base = self.last
        out = base.copy()
        att_db = self.decay_db * max(0, k - self.hold_frames)
        c0 = base[0] - att_db * C0_PER_DB
        out[0] = max(c0, min(base[0], self.cn[0]))
        out[CORR_INDEX] = base[CORR_INDEX] * self.corr_decay ** k
        if k > self.cn_after:
            w = min(1.0, (k - self.cn_after) / self.cn_glide)
            out[1:NB_CEPS] = (1 - w) * base[1:NB_CEPS] + w * self.cn[1:NB_CEPS]
            out[0] = (1 - w) * out[0] + w * min(out[0], self.cn[0])
            out[CORR_INDEX] *= 1 - w
        self.prev_out = out
        return out

    def reference_frame3(self) -> np.ndarray | None:
        """Cepstrum the next packet's interpolation should use after a loss (the last concealed frame)."""
        return None if self.prev_out is None else self.prev_out[:NB_CEPS].astype(np.float64)
