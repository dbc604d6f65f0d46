"""Real audio devices, not mocked: a private PulseAudio server with a null sink; decoded speech is
played with sounddevice (PortAudio -> ALSA pulse plugin -> server) while its monitor is recorded,
and the capture must carry the offline decode.

Skipped only where pulseaudio / the ALSA pulse plugin are missing; CI (.ci/run) installs them and
sets PNSC_REQUIRE_AUDIO_SERVER=1, which turns that skip into a failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures import pulse_server

REPO = Path(__file__).resolve().parents[1]
SR = 16000


@pytest.fixture(scope="module")
def pulse(tmp_path_factory):
    why = pulse_server.available()
    if why is not None:
        if os.environ.get("PNSC_REQUIRE_AUDIO_SERVER") == "1":
            pytest.fail(f"audio server required in CI: {why}")
        pytest.skip(why)
    server = pulse_server.PulseServer(tmp_path_factory.mktemp("pulse")).start()
    yield server
    server.stop()


def best_correlation(capture: np.ndarray, played: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Largest normalized cross-correlation of ``played`` inside ``capture`` over lags 0..max_lag."""
    from scipy.signal import fftconvolve

    capture = capture.astype(np.float64)
    played = played.astype(np.float64)
    n = len(played)
    cc = fftconvolve(capture, played[::-1], mode="full")[n - 1:n - 1 + max_lag + 1]
    energy = np.convolve(capture ** 2, np.ones(n), mode="full")[n - 1:n - 1 + max_lag + 1]
    norm = np.sqrt(np.maximum(energy, 1e-12) * np.sum(played ** 2))
    score = cc / norm
    lag = int(np.argmax(score))
    return float(score[lag]), lag


def window_scores(haystack: np.ndarray, signal: np.ndarray, start_s: float, end_s: float,
                  win_s: float = 0.5) -> tuple[list[float], list[float]]:
    """Each ``win_s`` window of ``signal`` between ``start_s`` and ``end_s`` (pauses skipped) found in
    ``haystack``: (best correlations, delays in s). Windows are matched one by one because a device
    underrun or an input overflow on a busy machine shifts everything after it."""
    scores, delays = [], []
    for start in np.arange(start_s, end_s - win_s + 1e-9, win_s):
        win = signal[int(start * SR): int((start + win_s) * SR)]
        if len(win) < win_s * SR or np.sqrt(np.mean(win ** 2)) < 1e-3:
            continue
        sc, lg = best_correlation(haystack, win, max_lag=len(haystack) - len(win))
        scores.append(sc)
        delays.append(lg / SR - start)
    return scores, delays


PLAY_AND_RECORD = r"""
import sys, time, numpy as np, soundfile as sf, sounddevice as sd
played, _ = sf.read(sys.argv[1], dtype="float32")
out = sys.argv[2]
dev = sd.query_devices(kind="output")
print("output device:", dev["name"], flush=True)
chunks = []
def on_input(indata, frames, t, status):
    chunks.append(indata[:, 0].copy())
with sd.InputStream(samplerate=16000, channels=1, dtype="float32", callback=on_input, latency=0.2):
    time.sleep(0.3)
    sd.play(played, 16000, blocking=True, latency=0.2)
    time.sleep(0.6)
np.save(out, np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
"""


def offline_decode(path: Path, seconds: float) -> np.ndarray:
    """The offline decode (runtime decoder, lpcnet-bl-s) of the first ``seconds`` of a bundled clip, float in [-1, 1]."""
    from pnsc.receiver.runtime import StreamingDecoder
    from pnsc.shared.audio import load_audio
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    pcm = load_audio(path, quiet=True)[: int(seconds * SR)]
    _, feats = quantize_features(extract_features(pcm))
    dec = StreamingDecoder("lpcnet-bl-s", None, seed=0)
    return dec.decode(feats).astype(np.float32) / 32768.0


def test_decoded_speech_through_a_real_sound_server(pulse, tmp_path):
    import soundfile as sf

    decoded = offline_decode(REPO / "samples" / "3080-5032-0005.flac", 4.0)
    decoded *= 0.5 / max(1e-6, float(np.abs(decoded).max()))
    wav, cap = tmp_path / "decoded.wav", tmp_path / "capture.npy"
    sf.write(wav, decoded, SR, subtype="FLOAT")
    proc = subprocess.run([sys.executable, "-c", PLAY_AND_RECORD, str(wav), str(cap)], cwd=REPO,
                          env=pulse.env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "output device:" in proc.stdout
    capture = np.load(cap)
    assert len(capture) > len(decoded), (len(capture), len(decoded))
    scores, delays = window_scores(capture, decoded, 0.0, 4.0)
    assert len(scores) >= 5
    assert np.median(scores) > 0.9, (scores, delays)
    assert 0 <= float(np.median(delays)) < 1.0  # the capture starts before the playback; under 1 s of latency
    # the same capture does not match other speech (the check can fail)
    other = offline_decode(REPO / "samples" / "2033-164914-0000.flac", 4.0)
    other_scores, _ = window_scores(capture, other, 0.0, 4.0)
    print(f"capture vs decode: window correlations {np.round(scores, 3).tolist()} at "
          f"{np.round(delays, 3).tolist()} s; vs other speech {np.round(other_scores, 3).tolist()}")
    assert np.median(other_scores) < 0.6, other_scores

RECORD_UNTIL_STDIN = r"""
import sys, numpy as np, sounddevice as sd
chunks = []
def on_input(indata, frames, t, status):
    chunks.append(indata[:, 0].copy())
with sd.InputStream(samplerate=16000, channels=1, dtype="float32", callback=on_input):
    print("recording", flush=True)
    sys.stdin.readline()
np.save(sys.argv[1], np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
"""


def test_demo_plays_the_call_through_the_sound_server(pulse, tmp_path):
    """`pnsc demo` finds the (null-sink) output device, plays the call through it, and what the
    sound server received is the audio the demo reports as played."""
    import soundfile as sf

    cap = tmp_path / "capture.npy"
    env = dict(pulse.env(), OMP_NUM_THREADS="1")
    rec = subprocess.Popen([sys.executable, "-c", RECORD_UNTIL_STDIN, str(cap)], cwd=REPO, env=env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert rec.stdout.readline().strip() == "recording"
        out = tmp_path / "demo"
        r = subprocess.run([sys.executable, "-m", "pnsc", "demo", "--seconds", "4", "--out", str(out)], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "played through: " in r.stdout, r.stdout[-2000:]
    finally:
        rec.communicate("stop\n", timeout=30)
    assert rec.returncode == 0
    capture = np.load(cap)
    received, sr = sf.read(out / "received.wav", dtype="float32")
    assert sr == SR and len(received) == 4 * SR
    scores, lags = window_scores(capture, received, 0.5, 3.5)
    fig = json.loads((out / "summary.json").read_text())
    print(f"demo through the sound server: window correlations {np.round(scores, 3).tolist()}, "
          f"delays {np.round(lags, 3).tolist()} s, underruns {fig['underruns']}")
    assert len(scores) >= 3
    assert np.median(scores) > 0.9, (scores, lags, fig["underruns"])


PLAY_FILE = r"""
import sys, soundfile as sf, sounddevice as sd
x, sr = sf.read(sys.argv[1], dtype="float32")
print("playing", flush=True)
sd.play(x, sr, blocking=True)
"""


def test_demo_mic_captures_live_speech(pulse, tmp_path):
    """`pnsc demo --mic` records from the default input device (here the null sink's monitor, while
    another process plays a bundled clip into the sink) and sends that speech through the call."""
    import soundfile as sf

    clip = REPO / "samples" / "2033-164914-0000.flac"
    env = dict(pulse.env(), OMP_NUM_THREADS="1")
    player = subprocess.Popen([sys.executable, "-c", PLAY_FILE, str(clip)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert player.stdout.readline().strip() == "playing"
        out = tmp_path / "demo"
        r = subprocess.run([sys.executable, "-m", "pnsc", "demo", "--mic", "--no-play", "--seconds", "4", "--out",
                            str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "sending the microphone" in r.stderr
    finally:
        player.wait(timeout=60)
    sent, sr = sf.read(out / "reference.wav", dtype="float32")
    assert sr == SR and 3.5 * SR <= len(sent) <= 4 * SR
    speech, _ = sf.read(clip, dtype="float32")
    scores, delays = window_scores(speech, sent, 0.5, len(sent) / SR)
    print(f"demo --mic: captured speech windows vs the clip played into the sink: correlations "
          f"{np.round(scores, 3).tolist()}")
    assert len(scores) >= 3
    assert np.median(scores) > 0.9, (scores, delays)
