import numpy as np
import pytest
from hypothesis import given, strategies as st

from pnsc.shared.constants import GROUP_UNKNOWN, PACKET_BYTES
from pnsc.shared.pnscfile import HEADER_BYTES, PnscFormatError, decode_pnsc, encode_pnsc, read_pnsc


@given(st.binary(max_size=8 * 50).map(lambda b: b[: len(b) // 8 * 8]), st.integers(0, 255))
def test_round_trip(payload, group):
    packets = np.frombuffer(payload, dtype=np.uint8).reshape(-1, PACKET_BYTES)
    data = encode_pnsc(packets, group)
    assert len(data) == HEADER_BYTES + len(payload)
    header, back = decode_pnsc(data)
    assert header.group == group and header.num_packets == len(packets)
    assert back.tobytes() == payload


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(data):
    try:
        decode_pnsc(data)
    except PnscFormatError:
        pass


def test_specific_errors(tmp_path):
    good = encode_pnsc(np.zeros((3, 8), dtype=np.uint8), GROUP_UNKNOWN)
    with pytest.raises(PnscFormatError, match="too short"):
        decode_pnsc(good[:10])
    with pytest.raises(PnscFormatError, match="not a .pnsc file"):
        decode_pnsc(b"RIFF" + good[4:])
    with pytest.raises(PnscFormatError, match="version"):
        decode_pnsc(good[:4] + bytes([9]) + good[5:])
    with pytest.raises(PnscFormatError, match="announces 3 packets"):
        decode_pnsc(good[:-1])
    with pytest.raises(FileNotFoundError):
        read_pnsc(tmp_path / "missing.pnsc")
