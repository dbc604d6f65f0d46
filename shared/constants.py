"""Fixed parameters of the 1.6 kb/s LPCNet-style codec: the one home of every codec constant.

Sender, receiver, training and tests import these names; no module defines its own copy.
"""
from __future__ import annotations

SAMPLE_RATE = 16_000
FRAME_SIZE = 160  # 10 ms
WINDOW_SIZE = 320  # 20 ms analysis window (previous frame + current frame)
FRAMES_PER_PACKET = 4  # one 40 ms superframe
PACKET_SAMPLES = FRAME_SIZE * FRAMES_PER_PACKET  # 640
PACKET_BITS = 64
PACKET_BYTES = PACKET_BITS // 8
BITRATE = PACKET_BITS * SAMPLE_RATE // PACKET_SAMPLES  # 1600 b/s

PREEMPHASIS = 0.85
NB_BANDS = 18
LPC_ORDER = 16
PITCH_MIN = 32  # samples (500 Hz)
PITCH_MAX = 256  # samples (62.5 Hz)

# Feature vector per 10 ms frame: 18 cepstral coefficients, pitch period, pitch correlation.
NB_CEPS = NB_BANDS
PERIOD_INDEX = 18
CORR_INDEX = 19
FEATURE_DIM = 20
VOICED_CORR = 0.35  # pitch correlation at or above this counts as voiced (pitch tracker, quantizer)
FRAME_CONTEXT = 2  # feature frames of context each side for the decoder's frame-rate network convs

# Speaker groups (paper: C = 4); GROUP_UNKNOWN marks "no group decided yet".
NUM_GROUPS = 4
GROUP_UNKNOWN = 255

# Decoder sampling (LPCNet): each mu-law level is drawn from max(softmax(boost * logits) - PDF_FLOOR, 0),
# renormalised; subtracting the floor cuts the long low-probability tail that sounds as hiss. The default of
# the runtime's `pdf_floor` parameter (pnsc.receiver.sampling), baked into the exported loop graphs.
# xiph LPCNet uses 0.002; 0.0005 measured better on our decoders' validation speakers (scripts/tune_sampling.py).
PDF_FLOOR = 0.0005

# LTP taps (decoders whose config has ltp_taps > 0): GRU-A also sees the mu-law excitations drawn one pitch
# lag back, lag = clamp(round(period), LTP_MIN_LAG, LTP_MAX_LAG) of the frame's pitch period feature. The
# run-time decoders keep the last LTP_HISTORY drawn excitations (>= LTP_MAX_LAG + 9 // 2 + 1 for up to 9 taps).
LTP_MIN_LAG = PITCH_MIN  # 32
LTP_MAX_LAG = PITCH_MAX - 1  # 255
LTP_MAX_TAPS = 9
LTP_HISTORY = 264
