"""The formant postfilter on the call path: ``DecoderBank(postfilter=spec)`` gives each stream its own filter
(default None = the plain output, bit for bit), and a real call over websockets on loopback with loss
(concealment) and a mid-call decoder switch runs it on the continuous output, concealed frames included."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pnsc.receiver.core import ReceiverConfig, ReceiverCore
from pnsc.receiver.decoders import open_decoder
from pnsc.receiver.postfilter import FormantPostfilter, formant_postfilter, lpcs_from_features
from pnsc.receiver.runtime import DecoderBank, StreamingDecoder
from pnsc.receiver.server import ReceiverServer
from pnsc.sender.capture import FileSource
from pnsc.sender.client import SenderClient
from pnsc.sender.stream import SenderConfig, SenderCore
from pnsc.shared.netem import Impairments

SPEC = (0.7, 0.85, 0.0)


@pytest.fixture(scope="module")
def feats(speech_clip) -> np.ndarray:
    """0.6 s of real coded speech (analysis + 1.6 kb/s quantization)."""
    from pnsc.shared.features import extract_features
    from pnsc.shared.quantizer import quantize_features

    return quantize_features(extract_features(speech_clip[8000:17600]))[1]


def test_bank_default_is_the_plain_output(feats):
    bank = DecoderBank("s", groups=[1])
    assert bank.postfilter is None
    dec = bank.get("plpcnet-s", 1, seed=3)
    assert dec.postfilter is None
    assert np.array_equal(dec.decode(feats), StreamingDecoder("plpcnet-s", 1, seed=3).decode(feats))


def test_bank_postfilter_gives_each_stream_its_own_filter(feats):
    bank = DecoderBank("s", groups=[1], postfilter=SPEC)
    assert bank.postfilter == SPEC
    a, b = bank.get("plpcnet-s", 1, seed=3), bank.get("plpcnet-s", 1, seed=3)
    assert isinstance(a.postfilter, FormantPostfilter) and a.postfilter is not b.postfilter
    ya, yb = [], []
    for f in feats:  # two streams in parallel, frame by frame: a shared filter state would mix them
        ya.append(a.push(f))
        yb.append(b.push(f))
    ya, yb = np.concatenate(ya + [a.flush()]), np.concatenate(yb + [b.flush()])
    assert np.array_equal(ya, yb)
    # exactly one fresh FormantPostfilter(*SPEC) on that stream, and audibly not the plain output
    alone = StreamingDecoder("plpcnet-s", 1, seed=3, postfilter=FormantPostfilter(*SPEC)).decode(feats)
    assert np.array_equal(ya, alone)
    plain = StreamingDecoder("plpcnet-s", 1, seed=3).decode(feats)
    assert ya.shape == plain.shape and np.mean(ya != plain) > 0.5


@pytest.mark.parametrize("spec,message", [((0.9, 0.5, 0.0), "g_n <= g_d"), ((0.7, 0.85, 1.0), "mu must be"),
                                          ((0.7, 0.85), "spec must be None or")])
def test_bank_refuses_a_bad_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        DecoderBank("s", postfilter=spec)


class _Switching(SenderCore):
    """A sender whose speaker group changes from 0 to 3 at packet 20 (the receiver switches decoders)."""

    def push(self, pcm, t=None):
        if self.seq >= 20:
            self.config.group = 3
        return super().push(pcm, t)


async def _lossy_switching_call(clip, decoder):
    """Drain-mode receiver on loopback; 20 % injected loss without redundancy (all concealed), a group
    change mid-call. -> (audio, stats, features the decoder was pushed, sequence numbers concealed)."""
    pushed, concealed = [], []
    push = decoder.push
    decoder.push = lambda f: (pushed.append(np.array(f, np.float32)), push(f))[1]
    core = ReceiverCore(ReceiverConfig(mode="drain"), decoder=decoder)
    core.on_packet = lambda seq, kind: concealed.append(seq) if kind == "concealed" else None
    out = []
    srv = await ReceiverServer(core, on_audio=lambda: out.append(core.drain())).start()
    client = SenderClient(srv.uri, _Switching(SenderConfig(group=0, redundancy=0), sid=9), pace=False,
                          netem=Impairments(loss=0.2, seed=5))
    try:
        await client.run(FileSource(pcm=clip, pace=False, start=1000.0), wait_connected=3)
        await asyncio.sleep(0.1)
    finally:
        await srv.stop()
    out.append(core.finish())
    return np.concatenate(out), core.snapshot(), np.stack(pushed), concealed


def test_call_with_loss_and_switch_postfilters_the_continuous_stream(speech_clip):
    clip = speech_clip[: int(16000 * 1.6)]
    plain = asyncio.run(_lossy_switching_call(clip, open_decoder("s")))
    filt = asyncio.run(_lossy_switching_call(clip, open_decoder("s", postfilter=SPEC)))
    (y0, st0, f0, lost0), (y1, st1, f1, lost1) = plain, filt
    # the postfilter changes nothing upstream: same losses, same concealment, same features, same decoders
    assert st1.postfilter == "0.7,0.85,0" and st0.postfilter == ""
    assert lost1 == lost0 and len(lost0) >= 3 and st1.concealed_frames == st0.concealed_frames > 0
    assert np.array_equal(f1, f0)
    assert st1.decoder == st0.decoder == "plpcnet-s-g3"
    assert len(y1) == len(y0) == len(f0) * 160
    # the output is the postfilter run continuously over the plain output, each frame with its own
    # predictor: received, concealed and the crossfaded switch frame alike (1 LSB: numpy vs C LPC)
    ref = np.clip(np.round(formant_postfilter(y0.astype(np.float64), lpcs_from_features(f0), *SPEC)), -32768, 32767)
    assert np.max(np.abs(y1.astype(np.int32) - ref)) <= 1
    for seq in lost0:  # concealed packets are filtered too (drain mode: packet n is samples n*640..)
        s = slice(seq * 640, (seq + 1) * 640)
        assert np.mean(y1[s] != y0[s]) > 0.3, seq
