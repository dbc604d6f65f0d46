import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from pnsc.shared.constants import GROUP_UNKNOWN, PACKET_BYTES
from pnsc.shared.pnscfile import FORMAT_VERSION, HEADER_BYTES, PnscFormatError, decode_pnsc, encode_pnsc, read_pnsc


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


FIXTURE_V1 = Path(__file__).parent / "fixtures" / "v1-3080-0.5s-group1.pnsc"


def _v1_bytes(packets: np.ndarray, group: int) -> bytes:
    """The format-version-1 writer as it was (16-byte header, no sample count)."""
    packets = np.ascontiguousarray(packets, dtype=np.uint8).reshape(-1, PACKET_BYTES)
    return struct.pack(">4sBBIIH", b"PNSC", 1, group, 16000, len(packets), 0) + packets.tobytes()


@given(st.integers(1, 40).flatmap(lambda k: st.tuples(st.just(k), st.integers((k - 1) * 640 + 1, k * 640))),
       st.integers(0, 255))
def test_version2_stores_the_sample_count(k_n, group):
    k, n = k_n
    packets = np.arange(k * 8, dtype=np.uint8).reshape(k, 8)
    data = encode_pnsc(packets, group, num_samples=n)
    assert HEADER_BYTES == 20 and len(data) == HEADER_BYTES + 8 * k
    header, back = decode_pnsc(data)
    assert header.version == FORMAT_VERSION == 2
    assert header.num_samples == header.output_samples == n and header.group == group
    assert np.array_equal(back, packets)


def test_version1_still_reads():
    packets = np.arange(5 * 8, dtype=np.uint8).reshape(5, 8)
    header, back = decode_pnsc(_v1_bytes(packets, 3))
    assert (header.version, header.group, header.num_packets, header.num_samples) == (1, 3, 5, None)
    assert header.output_samples == 5 * 640
    assert np.array_equal(back, packets)
    # a file written by the version-1 writer before version 2 existed (0.5 s of samples/3080-5032-0005.flac)
    header, back = read_pnsc(FIXTURE_V1)
    assert (header.version, header.group, header.num_packets, header.num_samples) == (1, 1, 13, None)
    assert FIXTURE_V1.read_bytes() == _v1_bytes(back, 1)


def test_version2_errors():
    packets = np.zeros((3, 8), dtype=np.uint8)
    good = encode_pnsc(packets, 2, num_samples=1500)
    for bad_n in (1280, 1921, 0):
        bad = good[:14] + struct.pack(">I", bad_n) + good[18:]
        with pytest.raises(PnscFormatError, match=f"sample count {bad_n} does not fit 3 packets"):
            decode_pnsc(bad)
    with pytest.raises(PnscFormatError, match="too short for a .pnsc header .18 bytes, version 2 needs 20"):
        decode_pnsc(good[:18])
    with pytest.raises(PnscFormatError, match="trailing bytes"):
        decode_pnsc(good + b"\0")
    with pytest.raises(PnscFormatError, match="format version 3 is not supported .this pnsc reads versions 1..2. "
                                              ".written by a newer pnsc"):
        decode_pnsc(good[:4] + bytes([3]) + good[5:])
    with pytest.raises(PnscFormatError, match="does not fit"):
        encode_pnsc(packets, 2, num_samples=5000)
