import numpy as np
import pytest
from hypothesis import given, strategies as st

from pnsc.shared.bitstream import FIELD_BITS, FIELDS, BitstreamError, pack, pack_array, unpack, unpack_array
from pnsc.shared.constants import PACKET_BITS, PACKET_BYTES

field_values = st.fixed_dictionaries({name: st.integers(0, (1 << bits) - 1) for name, bits in FIELDS})


def test_allocation_is_64_bits_as_lpcnet():
    assert sum(FIELD_BITS.values()) == PACKET_BITS == 64
    assert FIELD_BITS["c0"] == 7 and FIELD_BITS["pitch"] == 6 and FIELD_BITS["pitch_mod"] == 3
    assert FIELD_BITS["corr"] == 2 and FIELD_BITS["vq0"] + FIELD_BITS["vq1"] + FIELD_BITS["vq2"] == 30
    assert FIELD_BITS["mid"] + FIELD_BITS["mid_sign"] == 13 and FIELD_BITS["interp"] == 3


@given(field_values)
def test_pack_unpack_round_trip(fields):
    packet = pack(fields)
    assert len(packet) == PACKET_BYTES
    assert unpack(packet) == fields


@given(st.binary(min_size=PACKET_BYTES, max_size=PACKET_BYTES))
def test_every_8_byte_string_is_a_packet(raw):
    assert pack(unpack(raw)) == raw


@given(st.lists(field_values, min_size=0, max_size=20))
def test_vectorised_matches_scalar(rows):
    arrays = {name: np.array([r[name] for r in rows], dtype=np.int64) for name, _ in FIELDS}
    packed = pack_array(arrays)
    assert packed.shape == (len(rows), PACKET_BYTES)
    assert [bytes(p) for p in packed] == [pack(r) for r in rows]
    back = unpack_array(packed)
    for name, _ in FIELDS:
        assert back[name].tolist() == arrays[name].tolist()


@given(st.binary(max_size=20).filter(lambda b: len(b) != PACKET_BYTES))
def test_wrong_length_rejected(raw):
    with pytest.raises(BitstreamError, match="8 bytes"):
        unpack(raw)


def test_out_of_range_and_missing_fields_rejected():
    fields = {name: 0 for name, _ in FIELDS}
    with pytest.raises(BitstreamError, match="does not fit"):
        pack({**fields, "c0": 128})
    with pytest.raises(BitstreamError, match="does not fit"):
        pack({**fields, "pitch": -1})
    del fields["interp"]
    with pytest.raises(BitstreamError, match="missing"):
        pack(fields)
    with pytest.raises(BitstreamError):
        unpack_array(np.zeros((3, 7), dtype=np.uint8))
