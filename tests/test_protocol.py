"""Wire protocol: round trips, every rejection reason, and property tests (no input crashes the parser
or the receiver core)."""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pnsc.shared.protocol import (
    MAX_MESSAGE_BYTES,
    Audio,
    Bye,
    Hello,
    ProtocolError,
    encode_audio,
    encode_bye,
    encode_hello,
    encode_raw,
    normalize_uri,
    parse_hostport,
    parse_message,
)

PKT = bytes(range(8))


def test_round_trip():
    assert parse_message(encode_hello(123)) == Hello(123)
    assert parse_message(encode_bye(77)) == Bye(77)
    m = parse_message(encode_audio(5, 1_700_000_000_000, PKT, 2, 0.5, [b"a" * 8, b"b" * 8]))
    assert m == Audio(5, 1_700_000_000_000, PKT, 2, 0.5, (b"a" * 8, b"b" * 8))
    assert parse_message(encode_audio(0, 0, PKT)).group is None


def test_largest_legal_message_fits():
    m = encode_audio(2**32 - 1, 2**53 - 1, PKT, 255, 1.0, [PKT] * 8)
    assert len(m) <= MAX_MESSAGE_BYTES
    assert len(parse_message(m).redundancy) == 8


@pytest.mark.parametrize("data,reason", [
    (b"", "msgpack"),
    (b"\xc1", "msgpack"),  # never-used msgpack byte
    (b"\x92\x01", "msgpack"),  # truncated array
    (encode_hello(1) + b"\x00", "msgpack"),  # trailing data
    (b"x" * (MAX_MESSAGE_BYTES + 1), "oversize"),
    (encode_raw([1, 2]), "schema"),
    (encode_raw({"t": "a"}), "schema"),
    (encode_raw({"v": 2, "t": "hello", "sid": 1}), "version"),
    (encode_raw({"v": "1", "t": "hello", "sid": 1}), "version"),
    (encode_raw({"v": 1, "t": "nope"}), "schema"),
    (encode_raw({"v": 1, "t": "hello", "sid": 1, "x": 1}), "schema"),
    (encode_raw({"v": 1, "t": "hello", "sid": -1}), "range"),
    (encode_raw({"v": 1, "t": "a", "seq": 1, "ts": 0}), "schema"),
    (encode_raw({"v": 1, "t": "a", "seq": 1.5, "ts": 0, "pkt": PKT}), "type"),
    (encode_raw({"v": 1, "t": "a", "seq": True, "ts": 0, "pkt": PKT}), "type"),
    (encode_raw({"v": 1, "t": "a", "seq": 2**32, "ts": 0, "pkt": PKT}), "range"),
    (encode_raw({"v": 1, "t": "a", "seq": 1, "ts": 0, "pkt": "12345678"}), "type"),
    (encode_raw({"v": 1, "t": "a", "seq": 1, "ts": 0, "pkt": b"1234567"}), "size"),
    (encode_raw({"v": 1, "t": "a", "seq": 1, "ts": 0, "pkt": PKT, "grp": 4}), "group"),
    (encode_raw({"v": 1, "t": "a", "seq": 1, "ts": 0, "pkt": PKT, "grp": 256}), "group"),
    (encode_raw({"v": 1, "t": "a", "seq": 1, "ts": 0, "pkt": PKT, "conf": float("nan")}), "range"),
    (encode_raw({"v": 1, "t": "a", "seq": 1, "ts": 0, "pkt": PKT, "red": [PKT, PKT]}), "range"),
    (encode_raw({"v": 1, "t": "a", "seq": 9, "ts": 0, "pkt": PKT, "red": PKT}), "type"),
    (encode_raw({"v": 1, "t": "a", "seq": 9, "ts": 0, "pkt": PKT, "red": [b"short"]}), "size"),
    (msgpack.packb(msgpack.ExtType(1, b"x")), "msgpack"),
    ("text", "type"),
])
def test_rejections(data, reason):
    with pytest.raises(ProtocolError) as exc:
        parse_message(data)
    assert exc.value.reason == reason
    assert str(exc.value)  # one readable line


def test_address_parsing():
    assert parse_hostport("1.2.3.4:99") == ("1.2.3.4", 99)
    assert parse_hostport(":7") == ("0.0.0.0", 7)
    assert parse_hostport("[::1]:8") == ("::1", 8)
    for bad in ("host:", "host:x", "h:70000"):
        with pytest.raises(ValueError):
            parse_hostport(bad)
    assert normalize_uri("10.0.0.1:5") == "ws://10.0.0.1:5"
    assert normalize_uri("wss://a:1") == "wss://a:1"
    with pytest.raises(ValueError):
        normalize_uri("http://a:1")


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                  st.text(max_size=12), st.binary(max_size=12))
_obj = st.recursive(_leaf, lambda ch: st.one_of(st.lists(ch, max_size=5),
                                                st.dictionaries(st.one_of(st.text(max_size=5), st.sampled_from(
                                                    ["v", "t", "seq", "ts", "pkt", "grp", "conf", "red", "sid"])),
                                                    ch, max_size=8)), max_leaves=20)
_near = st.fixed_dictionaries({"v": st.one_of(st.just(1), _leaf), "t": st.sampled_from(["a", "hello", "bye", "x"]),
                               "seq": st.one_of(st.integers(-5, 2**33), _leaf),
                               "ts": st.one_of(st.integers(-5, 2**54), _leaf),
                               "pkt": st.one_of(st.binary(min_size=7, max_size=9), _leaf)},
                              optional={"grp": st.one_of(st.integers(-1, 300), _leaf),
                                        "conf": st.one_of(st.floats(), _leaf),
                                        "red": st.one_of(st.lists(st.binary(min_size=8, max_size=8), max_size=10), _obj),
                                        "sid": st.one_of(st.integers(-1, 2**64), _leaf)})


def _packb(o):
    try:
        return msgpack.packb(o, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return b"\xc1"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data):
    try:
        parse_message(data)
    except ProtocolError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.one_of(_obj, _near))
def test_random_objects_never_crash(obj):
    data = _packb(obj)
    try:
        m = parse_message(data)
    except ProtocolError:
        return
    assert isinstance(m, (Hello, Audio, Bye))


@pytest.fixture(scope="module")
def core():
    from pnsc.receiver.core import ReceiverConfig, ReceiverCore

    return ReceiverCore(ReceiverConfig(mode="drain"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=300), st.one_of(_obj, _near).map(_packb)), max_size=8))
def test_receiver_core_survives_anything(core, messages):
    for i, data in enumerate(messages):
        assert isinstance(core.handle(data, float(i)), str)
    out = core.drain()
    assert out.dtype.name == "int16" and len(out) % 160 == 0
