"""Short-term (formant) postfilter for the decoder output, as classic LPC codecs run after synthesis.

Per 10 ms frame, with the frame's predictor ``a`` (``x[n] ~ sum a[k-1] x[n-k]``, ``A(z) = 1 - sum a_k z^-k``,
the one the decoder computes from the quantized cepstrum for its own synthesis):

    H(z) = A(z / g_n) / A(z / g_d) * (1 - mu z^-1),   0 < g_n <= g_d <= 1,  0 <= mu < 1

followed by an output gain that restores the frame's input energy (smoothed per sample, so it never jumps).
The pole part ``1/A(z/g_d)`` keeps the formant peaks, the zero part ``A(z/g_n)`` (broader) flattens them again,
so what is left deepens the valleys between formants, where LPCNet's sampling noise sits; ``mu`` tilts the
result back towards the highs. ``g_n == g_d, mu == 0`` is the identity.

Which domain.  ``a`` describes the *pre-emphasised* signal (``shared.lpc.lpc_from_cepstrum``: the features are
computed after pre-emphasis by ``PREEMPHASIS``; LPCNet synthesises in that domain and de-emphasises last).  The
postfilter must take its formant positions and bandwidths from that envelope as it is: converting it to the
de-emphasised domain (folding ``1/(1 - 0.85 z^-1)`` into it) would give ``H`` a strong low-pass tilt of its own
(the classic problem ``mu`` exists to undo).  Within a frame ``H`` is linear time-invariant and so commutes with
the fixed first-order de-emphasis: filtering before or after de-emphasis is the same (up to the frame-edge
transition, where ``H`` changes coefficients either way).  We therefore run it on the de-emphasised output,
the audio the listener hears, so that the gain normalisation keeps the *heard* frame energy (in the
pre-emphasised domain it would keep the energy of a high-passed signal and let the low band move).

Streaming.  The filter is one IIR per frame (numerator order 17, denominator 16) whose coefficients change at
frame edges only; its memory is the last 17 input and output samples (direct form I), carried across calls, so
a coefficient change meets the true signal history and makes no click. Causal, no look-ahead, no added delay.

    pf = FormantPostfilter(g_n=0.6, g_d=0.8, mu=0.2)
    for frame, a in zip(frames, lpcs):          # 160 samples and the (16,) predictor of each frame
        out = pf.process(frame, a)
    y = formant_postfilter(x, lpcs, g_n=0.6, g_d=0.8, mu=0.2)   # offline, the same result
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from pnsc.shared.constants import FRAME_SIZE, LPC_ORDER

_N = LPC_ORDER + 1  # filter order after the tilt term: numerator 17, denominator 16 (padded to 17)
# Hankel index for the direct-form-II-transposed state from past samples (most recent first, slot _N is 0)
_J, _M = np.meshgrid(np.arange(_N), np.arange(_N))
_HANKEL = np.where(_J >= _M, _J - _M, _N)
_EPS = 1e-9  # energy floor per sample (int16 or float scale alike): silence keeps gain 1
DEFAULT_GAIN_ALPHA = 0.95  # the output gain's per-sample smoothing (``FormantPostfilter``)


def check_params(g_n: float, g_d: float, mu: float, gain_alpha: float) -> None:
    """Raise ValueError with a one-line reason on parameters the postfilter cannot use."""
    for name, v in (("g_n", g_n), ("g_d", g_d), ("mu", mu), ("gain_alpha", gain_alpha)):
        if not np.isfinite(v):
            raise ValueError(f"postfilter {name} must be finite, got {v}")
    if not 0.0 < g_n <= 1.0:
        raise ValueError(f"postfilter g_n must be in (0, 1], got {g_n}")
    if not 0.0 < g_d <= 1.0:
        raise ValueError(f"postfilter g_d must be in (0, 1], got {g_d}")
    if g_n > g_d:
        raise ValueError(f"postfilter needs g_n <= g_d (else it flattens the formants), got g_n {g_n} > g_d {g_d}")
    if not 0.0 <= mu < 1.0:
        raise ValueError(f"postfilter mu must be in [0, 1), got {mu}")
    if not 0.0 <= gain_alpha < 1.0:
        raise ValueError(f"postfilter gain_alpha must be in [0, 1), got {gain_alpha}")


# The setting chosen on validation speech and confirmed on held-out speech (README, Quality): what the demo's
# live "p" key switches on when the call started without one.
RECOMMENDED: tuple[float, float, float] = (0.7, 0.85, 0.0)


def check_spec(spec) -> tuple[float, float, float] | None:
    """None, or a valid ``(g_n, g_d, mu)`` as floats (the spec a bank or receiver builds its filters from);
    ValueError (one line) otherwise."""
    if spec is None:
        return None
    try:
        g_n, g_d, mu = (float(v) for v in spec)
    except (TypeError, ValueError):
        raise ValueError(f"postfilter spec must be None or (g_n, g_d, mu), got {spec!r}") from None
    check_params(g_n, g_d, mu, DEFAULT_GAIN_ALPHA)
    return g_n, g_d, mu


def parse_postfilter(spec: str) -> tuple[float, float, float] | None:
    """``"off"`` -> None; ``"G_N,G_D,MU"`` (e.g. ``"0.7,0.85,0"``) -> the checked triple (ValueError otherwise)."""
    from pnsc.receiver.specs import parse_off_or_triple

    return check_spec(parse_off_or_triple(spec, "postfilter", "G_N,G_D,MU", "0.7,0.85,0"))


def describe_postfilter(spec: tuple[float, float, float] | None) -> str:
    """Human text for a spec, as the commands print it: ``"formant postfilter 0.7/0.85/0"`` or ``"off"``."""
    return "off" if spec is None else "formant postfilter {:g}/{:g}/{:g}".format(*spec)


class FormantPostfilter:
    """Streaming short-term postfilter (see the module docstring); ``process`` one frame (or block) at a time.

    ``gain_alpha``: per-sample smoothing of the output gain towards each frame's energy-keeping target
    (``g[n] = alpha g[n-1] + (1 - alpha) target``; 0 = jump at frame edges, 0.99 = ~6 ms time constant).
    """

    def __init__(self, g_n: float = 0.6, g_d: float = 0.8, mu: float = 0.2, gain_alpha: float = DEFAULT_GAIN_ALPHA):
        check_params(g_n, g_d, mu, gain_alpha)
        self.g_n, self.g_d, self.mu, self.gain_alpha = float(g_n), float(g_d), float(mu), float(gain_alpha)
        k = np.arange(1, LPC_ORDER + 1)
        self._wn, self._wd = self.g_n ** k, self.g_d ** k
        self._alpha_pow = self.gain_alpha ** np.arange(1, FRAME_SIZE + 1)
        self.reset()

    def reset(self) -> None:
        """Forget the signal history and the gain (a new stream)."""
        self._xh = np.zeros(_N + 1)  # past inputs, most recent first, trailing 0 for the Hankel index
        self._yh = np.zeros(_N + 1)  # past (unscaled) filter outputs, likewise
        self._gain = 1.0

    def coefficients(self, lpc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(b, a) of ``H(z)`` for one frame's (16,) predictor, both of length 18."""
        a = np.asarray(lpc, np.float64).reshape(-1)
        if a.shape != (LPC_ORDER,):
            raise ValueError(f"postfilter needs a ({LPC_ORDER},) predictor per frame, got shape {np.shape(lpc)}")
        num = np.empty(_N)
        num[0], num[1:] = 1.0, -a * self._wn
        b = np.zeros(_N + 1)
        b[:_N] += num
        b[1:] -= self.mu * num
        den = np.zeros(_N + 1)
        den[0], den[1:_N] = 1.0, -a * self._wd
        return b, den

    def process(self, x: np.ndarray, lpc: np.ndarray) -> np.ndarray:
        """Filter ``x`` with ``lpc``: (16,) for the whole block, or (k, 16) for k consecutive ``FRAME_SIZE``
        frames of ``x`` (the last may be shorter). Returns ``x``'s float dtype (float64 for other input)."""
        x = np.asarray(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        if x.ndim != 1:
            raise ValueError(f"postfilter input must be 1-D, got shape {x.shape}")
        lpc = np.asarray(lpc, np.float64)
        if lpc.ndim == 1:
            return self._block(x.astype(np.float64), lpc).astype(dtype, copy=False)
        n = -(-x.size // FRAME_SIZE)
        if lpc.ndim != 2 or lpc.shape[0] < n:
            raise ValueError(f"postfilter needs one predictor per {FRAME_SIZE}-sample frame: {n} for "
                             f"{x.size} samples, got shape {lpc.shape}")
        xf = x.astype(np.float64)
        out = np.empty(x.size)
        for t in range(n):
            s = slice(t * FRAME_SIZE, (t + 1) * FRAME_SIZE)
            out[s] = self._block(xf[s], lpc[t])
        return out.astype(dtype, copy=False)

    def _block(self, x: np.ndarray, lpc: np.ndarray) -> np.ndarray:
        if x.size == 0:
            return x.copy()
        if not np.all(np.isfinite(x)):
            raise ValueError("postfilter input has non-finite samples")
        b, a = self.coefficients(lpc)
        # DF-II-T state equivalent to the direct-form-I history (past inputs and outputs) under the NEW
        # coefficients: a coefficient change at the frame edge then acts on the true signal history
        zi = self._xh[_HANKEL] @ b[1:] - self._yh[_HANKEL] @ a[1:]
        y, _ = lfilter(b, a, x, zi=zi)
        m = min(x.size, _N)
        self._xh[m:_N] = self._xh[:_N - m].copy()
        self._xh[:m] = x[::-1][:m]
        self._yh[m:_N] = self._yh[:_N - m].copy()
        self._yh[:m] = y[::-1][:m]
        target = np.sqrt((float(x @ x) + _EPS * x.size) / (float(y @ y) + _EPS * x.size))
        ap = self._alpha_pow[:x.size] if x.size <= FRAME_SIZE else self.gain_alpha ** np.arange(1, x.size + 1)
        g = target + (self._gain - target) * ap
        self._gain = float(g[-1])
        return y * g


def formant_postfilter(x: np.ndarray, lpcs: np.ndarray, g_n: float = 0.6, g_d: float = 0.8, mu: float = 0.2,
                       gain_alpha: float = DEFAULT_GAIN_ALPHA) -> np.ndarray:
    """Offline form: ``x`` (1-D audio) with one (16,) predictor per ``FRAME_SIZE`` frame in ``lpcs`` (k, 16);
    equals streaming the frames through a fresh ``FormantPostfilter``."""
    lpcs = np.asarray(lpcs)
    if lpcs.ndim != 2:
        raise ValueError(f"lpcs must be (frames, {LPC_ORDER}), got shape {lpcs.shape}")
    return FormantPostfilter(g_n, g_d, mu, gain_alpha).process(x, lpcs)


def lpcs_from_features(features: np.ndarray) -> np.ndarray:
    """(T, 20) dequantized features -> (T, 16) float32 predictors, as the decoder computes them per frame."""
    from pnsc.shared.lpc import lpc_from_cepstrum

    f = np.asarray(features, np.float32)
    if f.ndim != 2 or f.shape[1] < 18:
        raise ValueError(f"features must be (T, >=18), got shape {f.shape}")
    return lpc_from_cepstrum(f[:, :18])
