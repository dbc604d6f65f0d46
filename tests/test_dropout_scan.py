"""scripts/dropout_scan.py: the window rule that finds a decoder falling silent while the talker speaks."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("dropout_scan", REPO / "scripts" / "dropout_scan.py")
ds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ds)


def test_a_silent_stretch_under_speech_is_one_event_and_quiet_reference_is_not_counted():
    t = np.arange(16000 * 2) / 16000
    ref = 0.3 * np.sin(2 * np.pi * 200 * t)
    ref[:3200] = 1e-6  # 200 ms of leading silence: not active, whatever the decoder does there
    dec = ref.copy() + 1e-3
    assert ds.dropouts(ref, dec) == (18, 0, 0)
    dec[4800:9600] = 0.0  # 300 ms of silence in speech: 3 windows in a row, one event
    assert ds.dropouts(ref, dec) == (18, 3, 1)
    dec[16000:17600] = 0.0  # one more dropped window alone: counted, but no event
    assert ds.dropouts(ref, dec) == (18, 4, 1)
    assert ds.dropouts(ref[:100], dec[:100]) == (0, 0, 0)  # shorter than a window
    assert ds.parse_decoder("plpcnet-l:3") == ("plpcnet-l", 3) and ds.parse_decoder("lpcnet-bl-l") == ("lpcnet-bl-l", None)
