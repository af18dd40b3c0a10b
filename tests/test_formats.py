"""serve_app.formats: every response format decodes back (with soundfile, or PyAV for AAC) to the
rate it claims, the right length and the same sound; streamed WAV/PCM concatenate to the whole; the
time-stretch changes the duration and keeps the pitch."""

from __future__ import annotations

import asyncio
import io

import av
import numpy as np
import pytest
import soundfile as sf

from serve_app import formats

SR = 24000


def tone(seconds=1.0, sr=SR, freq=440.0, amplitude=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def decode_bytes(data: bytes, name: str, rate: int | None = None) -> tuple[np.ndarray, int]:
    """What a client gets out of ``data`` in format ``name``: pcm is read as the documented raw layout
    (its rate comes from X-Sample-Rate: ``rate``), AAC with PyAV (libsndfile has no AAC), the rest
    with soundfile."""
    if name == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768, rate
    if name == "aac":
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.audio[0]
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
            return samples, stream.rate
    samples, decoded_rate = sf.read(io.BytesIO(data), dtype="float32")
    return samples, decoded_rate


def decode(encoded: formats.Encoded) -> tuple[np.ndarray, int]:
    return decode_bytes(encoded.data, encoded.format.name, encoded.sample_rate)


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


# Decoded length may exceed the input by the codec's priming/padding (samples at the sent rate).
SLACK = {"wav": 0, "wav_float": 0, "flac": 0, "pcm": 0, "mp3": 0, "ogg": 0, "opus": 0, "aac": 2048}
LOSSLESS_ERROR = {"wav": 1 / 32768 + 1e-6, "flac": 1 / 32768 + 1e-6, "pcm": 1 / 32768 + 1e-6, "wav_float": 0.0}


def test_the_table_covers_the_documented_formats():
    assert set(formats.FORMATS) == {"wav", "wav_float", "flac", "mp3", "ogg", "opus", "aac", "pcm"}
    assert formats.DEFAULT_FORMAT == "wav" and formats.STREAM_FORMATS == ("wav", "pcm")
    media = {name: (f.media_type, f.extension) for name, f in formats.FORMATS.items()}
    assert media["mp3"] == ("audio/mpeg", "mp3") and media["flac"] == ("audio/flac", "flac")
    assert media["ogg"] == ("audio/ogg", "ogg") and media["opus"] == ("audio/ogg", "opus")
    assert media["aac"] == ("audio/aac", "aac") and media["wav_float"] == ("audio/wav", "wav")
    for name in formats.FORMATS:
        assert f"`{name}`" in formats.RESPONSE_FORMAT_DOC


@pytest.mark.parametrize("name", sorted(formats.FORMATS))
def test_each_format_decodes_to_its_rate_length_and_sound(name):
    x = tone(1.0)
    encoded = formats.encode(x, SR, name)
    assert encoded.sample_rate == SR            # 24 kHz suits every codec here: no resampling
    y, rate = decode(encoded)
    assert rate == encoded.sample_rate
    assert len(x) <= len(y) <= len(x) + SLACK[name]
    assert abs(dominant_hz(y[:len(x)], rate) - 440) < 2
    if name in LOSSLESS_ERROR:
        assert np.abs(y - x).max() <= LOSSLESS_ERROR[name]
    else:                                        # lossy: the same sound, at the same level
        rms_in, rms_out = np.sqrt(np.mean(x ** 2)), np.sqrt(np.mean(y ** 2))
        assert 0.8 < rms_out / rms_in < 1.2


@pytest.mark.parametrize("name,rate,sent", [("ogg", 44100, 48000), ("opus", 22050, 48000), ("mp3", 37000, 48000),
                                            ("ogg", 16000, 16000), ("aac", 44100, 44100), ("flac", 37000, 37000)])
def test_a_rate_the_codec_does_not_take_is_resampled_to_48k(name, rate, sent):
    x = tone(0.5, rate, freq=1000)
    encoded = formats.encode(x, rate, name)
    assert encoded.sample_rate == sent
    y, decoded_rate = decode(encoded)
    assert decoded_rate == sent
    assert abs(len(y) - 0.5 * sent) <= SLACK[name] + 0.01 * sent
    assert abs(dominant_hz(y[:int(0.5 * sent)], sent) - 1000) < 5


def test_the_16_bit_formats_carry_the_same_samples():
    x = np.random.default_rng(0).uniform(-1.2, 1.2, SR).astype(np.float32)
    wav, _ = sf.read(io.BytesIO(formats.encode(x, SR, "wav").data), dtype="int16")
    flac, _ = sf.read(io.BytesIO(formats.encode(x, SR, "flac").data), dtype="int16")
    pcm = np.frombuffer(formats.encode(x, SR, "pcm").data, "<i2")
    assert np.array_equal(flac, wav) and np.array_equal(pcm, wav)


def test_non_finite_samples_and_overload_are_sanitised():
    x = tone(0.1)
    x[10], x[20], x[30], x[40] = np.nan, np.inf, -np.inf, 3.0
    for name in ("wav", "flac", "pcm"):
        y, _ = decode(formats.encode(x, SR, name))
        assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    y, _ = decode(formats.encode(x, SR, "mp3"))                # clipped before encoding; the decoder may ring
    assert np.isfinite(y).all() and np.abs(y).max() < 1.1
    y, _ = decode(formats.encode(x, SR, "wav_float"))
    assert y[10] == 0 and y[20] == 1 and y[30] == -1 and y[40] == 3.0   # float keeps overload


def test_deployment_subtype_passes_wav_through_and_transcodes_the_rest():
    assert formats.deployment_subtype("wav") == "PCM_16"
    assert formats.deployment_subtype("wav_float") == "FLOAT"
    assert formats.deployment_subtype("wav", speed=1.5) == "FLOAT"      # stretched first, then encoded
    for name in ("flac", "mp3", "ogg", "opus", "aac", "pcm"):
        assert formats.deployment_subtype(name) == "FLOAT"


def test_transcode_passes_a_ready_wav_through_and_encodes_from_float():
    x = tone(0.5)
    ready = formats.encode(x, SR, "wav").data
    assert asyncio.run(formats.transcode(ready, SR, "wav")).data is ready
    source = formats.encode(x, SR, "wav_float").data
    flac = asyncio.run(formats.transcode(source, SR, "flac"))
    y, rate = decode(flac)
    assert flac.filename("out") == "out.flac" and rate == SR and np.abs(y - x).max() <= LOSSLESS_ERROR["flac"]
    faster = asyncio.run(formats.transcode(source, SR, "wav", speed=2.0))
    y, _ = decode(faster)
    assert abs(len(y) - len(x) / 2) < 0.03 * len(x)


def test_streamed_wav_and_pcm_concatenate_to_the_whole():
    x = tone(1.0)
    pieces = [x[:7000], x[7000:7001], x[7001:]]
    wav = formats.stream_header("wav", SR) + b"".join(formats.pcm16(p, SR) for p in pieces)
    header = formats.stream_header("wav", SR)
    assert header[:4] == b"RIFF" and header[4:8] == b"\xff\xff\xff\xff" and header[-4:] == b"\xff\xff\xff\xff"
    y, rate = sf.read(io.BytesIO(wav), dtype="float32")
    assert rate == SR and len(y) == len(x) and np.abs(y - x).max() <= LOSSLESS_ERROR["wav"]
    pcm = formats.stream_header("pcm", SR) + b"".join(formats.pcm16(p, SR) for p in pieces)
    assert pcm == formats.encode(x, SR, "pcm").data
    with pytest.raises(ValueError, match="cannot be streamed"):
        formats.stream_header("mp3", SR)


@pytest.mark.parametrize("speed", [0.25, 0.5, 0.8, 1.25, 2.0, 3.0, 4.0])
def test_stretch_scales_duration_and_keeps_pitch(speed):
    x = tone(2.0, freq=440)
    y = formats.stretch(x, SR, speed)
    assert y.dtype == np.float32
    assert abs(len(y) / (len(x) / speed) - 1) < 0.03
    assert abs(dominant_hz(y, SR) - 440) < 440 * 0.01          # resampling would move it to 440 * speed
    core = y[len(y) // 4: 3 * len(y) // 4]                      # no dropouts inside
    assert np.sqrt(np.mean(core ** 2)) > 0.8 * 0.3 / np.sqrt(2)


def test_stretch_bounds_and_identity():
    x = tone(0.2)
    assert np.array_equal(formats.stretch(x, SR, 1.0), x)
    for speed in (0.2, 4.5, 0.0):
        with pytest.raises(ValueError, match="speed"):
            formats.stretch(x, SR, speed)
    assert formats.stretch(np.zeros(0, np.float32), SR, 2.0).size == 0
