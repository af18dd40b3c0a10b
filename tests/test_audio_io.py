"""serve_app.audio_io: sniffing, decoding, limits, mel arrays, WAV encoding and decode memory."""

from __future__ import annotations

import io
import json
import math
import pickle
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models.audio.wav import encode_wav
from serve_app.audio_io import (
    ACCEPTED_AUDIO,
    InvalidAudio,
    UnsupportedMediaType,
    decode_audio,
    load_npy_mel,
    sniff_format,
    wav_duration,
)

ROOT = Path(__file__).resolve().parents[1]
SR = 44100

MP3_WRITABLE = "MP3" in sf.available_formats()
needs_mp3 = pytest.mark.skipif(not MP3_WRITABLE, reason="this libsndfile cannot write MP3")


def tone(freq=1000.0, seconds=1.0, sr=SR, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def to_bytes(data, sr=SR, fmt="WAV", subtype=None):
    buf = io.BytesIO()
    sf.write(buf, data, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def peak_hz(y, sr):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.argmax(spec) * sr / len(y)


@pytest.fixture(scope="module")
def files():
    """One real file per accepted format (stereo, 1 s of a 1 kHz tone), as bytes."""
    x = tone()
    st = np.stack([x, x], axis=1)
    out = {
        "wav": to_bytes(st),
        "wav_float": to_bytes(st, subtype="FLOAT"),
        "w64": to_bytes(st, fmt="W64"),
        "rf64": to_bytes(st, fmt="RF64"),
        "flac": to_bytes(st, fmt="FLAC"),
        "ogg_vorbis": to_bytes(st, fmt="OGG", subtype="VORBIS"),
        "ogg_opus": to_bytes(np.stack([tone(sr=48000)] * 2, axis=1), sr=48000, fmt="OGG", subtype="OPUS"),
    }
    if MP3_WRITABLE:
        out["mp3"] = to_bytes(st, fmt="MP3")
    return out


# ------------------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("name,kind", [
    ("wav", "wav"), ("wav_float", "wav"), ("w64", "wav"), ("rf64", "wav"), ("flac", "flac"),
    ("ogg_vorbis", "ogg"), ("ogg_opus", "ogg"),
    pytest.param("mp3", "mp3", marks=needs_mp3),
])
def test_sniff_real_files(files, name, kind):
    assert sniff_format(files[name][:64]) == kind
    assert kind in ACCEPTED_AUDIO


def test_sniff_crafted_mp3_headers():
    frame = bytes([0xFF, 0xFB, 0x90, 0x64]) + bytes(60)  # MPEG-1 layer III, 128 kb/s, 44.1 kHz
    assert sniff_format(frame) == "mp3"
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10)
    assert sniff_format(id3 + frame) == "mp3"
    assert sniff_format(b"ID3\x04\x00\x00\x00\x00\x7f\x7f" + bytes(54)) == "mp3"  # tag past head
    assert sniff_format(bytes([0xFF, 0xF1, 0x50, 0x80]) + bytes(60)) is None  # AAC ADTS
    assert sniff_format(bytes([0xFF, 0xFB, 0xF0, 0x64]) + bytes(60)) is None  # bad bitrate


def test_sniff_id3_before_flac(files):
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x14" + bytes(20)
    data = tag + files["flac"]
    assert sniff_format(data[:64]) == "flac"
    y = decode_audio(data, field="audio", target_sr=SR, max_seconds=5)
    assert y.shape == (SR,)
    # A tag longer than what sniff_format is given: decode_audio looks behind it itself.
    big = b"ID3\x04\x00\x00" + bytes([0, 0, 0x40, 0]) + bytes(8192) + files["flac"]
    assert sniff_format(big[:64]) == "mp3"
    assert decode_audio(big, field="audio", target_sr=SR, max_seconds=5).shape == (SR,)


def test_sniff_npy():
    buf = io.BytesIO()
    np.save(buf, np.zeros((80, 3), np.float32))
    assert sniff_format(buf.getvalue()[:64]) == "npy"


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(48)
NOT_AUDIO = {
    "text": b"Hello, this is not audio at all. " * 4,
    "garbage": bytes(range(7, 250, 3)) * 2,
    "png": PNG,
    "aiff": b"FORM\x00\x00\x10\x00AIFFCOMM" + bytes(48),
    "webp": b"RIFF\x00\x00\x10\x00WEBPVP8 " + bytes(48),
    "ogg_flac": b"OggS\x00\x02" + bytes(20) + b"\x01\x33" + b"\x7fFLAC\x01\x00" + bytes(40),
    "zip": b"PK\x03\x04" + bytes(60),
    "id3_text": b"ID3 tags are metadata, and this text is not one" + bytes(20),
}


@pytest.mark.parametrize("name", sorted(NOT_AUDIO))
def test_unrecognised_bytes_are_415(name):
    data = NOT_AUDIO[name]
    assert sniff_format(data) is None
    with pytest.raises(UnsupportedMediaType) as e:
        decode_audio(data, field="audio", target_sr=24000, max_seconds=10)
    assert e.value.detail == "audio: not a WAV, MP3, FLAC or OGG file"
    assert e.value.status_code == 415


def test_npy_is_not_audio():
    buf = io.BytesIO()
    np.save(buf, np.zeros((80, 3), np.float32))
    with pytest.raises(UnsupportedMediaType):
        decode_audio(buf.getvalue(), field="audio", target_sr=24000, max_seconds=10)


def test_empty_upload_is_400():
    with pytest.raises(InvalidAudio) as e:
        decode_audio(b"", field="audio", target_sr=24000, max_seconds=10)
    assert e.value.detail == "audio: file is empty"


# ------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("name", [
    "wav", "wav_float", "w64", "rf64", "flac", "ogg_vorbis", "ogg_opus",
    pytest.param("mp3", marks=needs_mp3),
])
def test_every_format_decodes(files, name):
    y = decode_audio(files[name], field="audio", target_sr=24000, max_seconds=5)
    assert y.dtype == np.float32 and y.ndim == 1 and y.flags.c_contiguous
    assert abs(len(y) - 24000) <= 24000 * 0.1  # lossy codecs pad / delay a little
    assert abs(peak_hz(y, 24000) - 1000) < 5


def test_wav_named_mp3_is_still_wav(files, tmp_path):
    p = tmp_path / "upload.mp3"
    p.write_bytes(files["wav"])
    assert sniff_format(p.read_bytes()[:64]) == "wav"
    assert decode_audio(p, field="audio", target_sr=SR, max_seconds=5).shape == (SR,)
    assert decode_audio(str(p), field="audio", target_sr=SR, max_seconds=5).shape == (SR,)


def test_open_file_objects(files):
    spool = tempfile.SpooledTemporaryFile(max_size=1024)  # rolls over to a real file on disk
    spool.write(files["flac"])  # left at the end: decode_audio reads from offset 0
    y = decode_audio(spool, field="audio", target_sr=16000, max_seconds=5)
    assert y.shape == (16000,)
    assert not spool.closed  # the caller's file stays open
    spool.close()


def test_truncated_wav(files):
    wav = files["wav"]
    # Header intact, data cut: what is there decodes.
    half = decode_audio(wav[: 44 + 4 * 1000], field="audio", target_sr=SR, max_seconds=5)
    assert half.shape == (1000,)
    np.testing.assert_allclose(half, tone()[:1000], atol=1e-4)
    # Header only: no samples.
    with pytest.raises(InvalidAudio) as e:
        decode_audio(wav[:44], field="audio", target_sr=SR, max_seconds=5)
    assert e.value.detail == "audio: file holds no samples"
    # Cut inside the header: recognised as WAV, cannot be decoded.
    with pytest.raises(InvalidAudio) as e:
        decode_audio(wav[:20], field="speech", target_sr=SR, max_seconds=5)
    assert e.value.detail == "speech: could not decode the WAV file"


def test_zero_sample_wav():
    data = to_bytes(np.zeros((0, 2), np.float32))
    with pytest.raises(InvalidAudio) as e:
        decode_audio(data, field="reference_audio", target_sr=24000, max_seconds=5)
    assert e.value.detail == "reference_audio: file holds no samples"
    assert e.value.status_code == 400


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_wav(bad):
    x = tone()
    x[1234] = bad
    with pytest.raises(InvalidAudio) as e:
        decode_audio(to_bytes(x, subtype="FLOAT"), field="audio", target_sr=24000, max_seconds=5)
    assert e.value.detail.startswith("audio: ") and "non-finite" in e.value.detail


def test_undecodable_files_say_nothing_of_the_server(tmp_path):
    bad = {
        "flac": b"fLaC" + np.random.default_rng(5).bytes(2000),
        "ogg": b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x01vorbis" + np.random.default_rng(6).bytes(2000),
        "wav": b"RIFF\x00\x10\x00\x00WAVEjunk" + np.random.default_rng(7).bytes(100),
    }
    for kind, data in bad.items():
        p = tmp_path / f"secret_dir_{kind}.bin"
        p.write_bytes(data)
        with pytest.raises(InvalidAudio) as e:
            decode_audio(p, field="audio", target_sr=24000, max_seconds=5)
        d = e.value.detail
        assert d.startswith("audio: could not decode the ") and str(tmp_path) not in d
        assert "secret" not in d and "Error" not in d and "\n" not in d


def test_stereo_mixdown():
    x = tone(seconds=0.5)
    opposite = decode_audio(to_bytes(np.stack([x, -x], 1), subtype="FLOAT"),
                            field="audio", target_sr=SR, max_seconds=5)
    assert np.abs(opposite).max() < 1e-6
    same = decode_audio(to_bytes(np.stack([x, x], 1), subtype="FLOAT"),
                        field="audio", target_sr=SR, max_seconds=5)
    np.testing.assert_allclose(same, x, atol=1e-6)
    # Also through the resampler and with more than two channels.
    four = decode_audio(to_bytes(np.stack([x, -x, x, -x], 1), subtype="FLOAT"),
                        field="audio", target_sr=24000, max_seconds=5)
    assert np.abs(four).max() < 1e-6


def test_resample_44k1_to_24k_keeps_pitch_and_length():
    x = tone(freq=1000, seconds=2.0)
    y = decode_audio(to_bytes(x, subtype="FLOAT"), field="audio", target_sr=24000, max_seconds=5)
    assert len(y) == math.ceil(len(x) * 24000 / SR) == 48000
    assert abs(peak_hz(y, 24000) - 1000) < 1.0
    mid = y[1000:-1000]
    assert abs(np.sqrt(np.mean(mid**2)) - 0.5 / np.sqrt(2)) < 0.01  # level kept


@pytest.mark.parametrize("src,dst", [(44100, 24000), (48000, 16000), (16000, 24000), (22050, 22050)])
def test_streamed_resampling_equals_one_shot(src, dst):
    import torch
    import torchaudio

    rng = np.random.default_rng(src + dst)
    x = (0.1 * rng.standard_normal(src * 7 + 123)).astype(np.float32)  # several segments
    y = decode_audio(to_bytes(x, sr=src, subtype="FLOAT"), field="audio", target_sr=dst, max_seconds=10)
    ref = torchaudio.functional.resample(torch.from_numpy(x), src, dst).numpy()
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_odd_source_rate_is_approximated():
    x = tone(seconds=1.0, sr=44101)
    y = decode_audio(to_bytes(x, sr=44101, subtype="FLOAT"), field="audio", target_sr=24000, max_seconds=5)
    assert abs(len(y) - 24000) <= 2 and abs(peak_hz(y, 24000) - 1000) < 2


def test_duration_limit_refuse_or_trim():
    x = tone(seconds=3.0)
    data = to_bytes(x, subtype="FLOAT")
    with pytest.raises(InvalidAudio) as e:
        decode_audio(data, field="reference_audio", target_sr=24000, max_seconds=2)
    assert e.value.detail == "reference_audio: audio is longer than 2 s"
    y = decode_audio(data, field="reference_audio", target_sr=24000, max_seconds=2, trim=True)
    assert len(y) == 48000
    y = decode_audio(data, field="reference_audio", target_sr=SR, max_seconds=1.5, trim=True)
    np.testing.assert_allclose(y, x[: int(1.5 * SR)], atol=1e-6)
    # Exactly at the limit is allowed.
    assert len(decode_audio(data, field="a", target_sr=SR, max_seconds=3)) == 3 * SR


def test_bad_arguments_are_programming_errors(files):
    with pytest.raises(ValueError):
        decode_audio(files["wav"], field="a", target_sr=0, max_seconds=5)
    with pytest.raises(ValueError):
        decode_audio(files["wav"], field="a", target_sr=24000, max_seconds=float("inf"))


# ------------------------------------------------------------------------------------- mel .npy


def npy_bytes(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ">f4"])
def test_npy_good_mel(dtype):
    mel = np.random.default_rng(0).standard_normal((80, 120)).astype(dtype)
    out = load_npy_mel(npy_bytes(mel), field="mel", n_mels=80, max_frames=1000)
    assert out.dtype == np.float32 and out.shape == (80, 120) and out.flags.c_contiguous
    np.testing.assert_allclose(out, mel.astype(np.float32))


def test_npy_fortran_order_and_path(tmp_path):
    mel = np.asfortranarray(np.ones((80, 10), np.float32))
    p = tmp_path / "mel.npy"
    np.save(p, mel)
    out = load_npy_mel(p, field="mel", n_mels=80, max_frames=100)
    assert out.flags.c_contiguous and out.shape == (80, 10)


def test_npy_pickled_object_array_refused():
    obj = np.empty((80, 2), dtype=object)
    obj[:] = 1.0
    with pytest.raises(InvalidAudio) as e:
        load_npy_mel(npy_bytes(obj, allow_pickle=True), field="mel", n_mels=80, max_frames=100)
    assert e.value.detail == "mel: object (pickled) arrays are not accepted"
    # A plain pickle is not a .npy file at all.
    with pytest.raises(UnsupportedMediaType):
        load_npy_mel(pickle.dumps(np.zeros((80, 2))), field="mel", n_mels=80, max_frames=100)


@pytest.mark.parametrize("arr,needle", [
    (np.zeros((80, 5), np.int16), "dtype int16"),
    (np.zeros((80, 5), np.complex64), "dtype complex64"),
    (np.zeros((100, 5), np.float32), "[80, frames], got shape [100, 5]"),
    (np.zeros((1, 80, 5), np.float32), "got shape [1, 80, 5]"),
    (np.zeros(80, np.float32), "got shape [80]"),
    (np.zeros((80, 0), np.float32), "holds no frames"),
    (np.zeros((80, 101), np.float32), "101 frames, more than the 100 allowed"),
])
def test_npy_refusals(arr, needle):
    with pytest.raises(InvalidAudio) as e:
        load_npy_mel(npy_bytes(arr), field="mel", n_mels=80, max_frames=100)
    assert e.value.detail.startswith("mel: ") and needle in e.value.detail


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_npy_non_finite_refused(bad):
    mel = np.zeros((80, 5), np.float32)
    mel[3, 2] = bad
    with pytest.raises(InvalidAudio) as e:
        load_npy_mel(npy_bytes(mel), field="mel", n_mels=80, max_frames=100)
    assert "non-finite" in e.value.detail
    big = np.full((80, 5), 1e300)  # float64 beyond float32's range
    with pytest.raises(InvalidAudio):
        load_npy_mel(npy_bytes(big), field="mel", n_mels=80, max_frames=100)


def test_npy_truncated_and_not_npy(files):
    data = npy_bytes(np.zeros((80, 50), np.float32))
    with pytest.raises(InvalidAudio) as e:
        load_npy_mel(data[:-100], field="mel", n_mels=80, max_frames=100)
    assert e.value.detail == "mel: .npy file is truncated or malformed"
    with pytest.raises(InvalidAudio):
        load_npy_mel(data[:20], field="mel", n_mels=80, max_frames=100)
    with pytest.raises(UnsupportedMediaType):
        load_npy_mel(files["wav"], field="mel", n_mels=80, max_frames=100)


# ------------------------------------------------------------------------------------- encoding


def test_encode_wav_round_trip_and_clip():
    x = np.array([0.0, 0.5, -0.5, 2.0, -3.0, np.nan], np.float32)
    data = encode_wav(x, 22050)
    assert sniff_format(data[:64]) == "wav"
    y, sr = sf.read(io.BytesIO(data), dtype="int16")
    info = sf.info(io.BytesIO(data))
    assert sr == 22050 and info.channels == 1 and info.subtype == "PCM_16" and len(y) == 6
    assert y[3] == 32767 and y[4] <= -32767 and y[5] == 0
    assert abs(int(y[1]) - 16384) <= 1


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
def test_encode_wav_subtypes(subtype):
    x = tone(seconds=0.25, sr=24000)
    x[0] = 1.5
    data = encode_wav(x, 24000, subtype=subtype)
    y, sr = sf.read(io.BytesIO(data), dtype="float32")
    assert sr == 24000 and len(y) == len(x) and sf.info(io.BytesIO(data)).subtype == subtype
    assert y[0] == pytest.approx(1.5 if subtype == "FLOAT" else 1.0, abs=1e-6)
    np.testing.assert_allclose(y[1:], x[1:], atol=1e-6)
    back = decode_audio(data, field="audio", target_sr=24000, max_seconds=5)
    assert back.shape == x.shape


def test_encode_wav_rejects_multichannel_and_bad_subtype():
    with pytest.raises(ValueError):
        encode_wav(np.zeros((2, 10), np.float32), 24000)
    with pytest.raises(ValueError):
        encode_wav(np.zeros(10, np.float32), 24000, subtype="MP3")
    assert len(encode_wav(np.zeros((1, 10), np.float32), 24000)) == 44 + 20


def test_wav_duration():
    assert wav_duration(np.zeros(48000), 24000) == 2.0
    assert wav_duration(np.zeros((1, 12000)), 24000) == 0.5
    assert wav_duration([], 16000) == 0.0


# ------------------------------------------------------------------------------------- memory

MEMORY_PROBE = textwrap.dedent("""
    import io, json, sys, time
    def status():  # resident and peak resident set, from the kernel's own accounting
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}
    rss_start = status()["VmRSS"]
    sys.path.insert(0, sys.argv[2])
    import numpy as np, soundfile as sf
    from serve_app.audio_io import decode_audio
    # Warm up: the first decode imports torch/torchaudio lazily; a server has done that already.
    warm = io.BytesIO()
    sf.write(warm, np.zeros((4800, 2), np.int16), 48000, format="WAV")
    decode_audio(warm.getvalue(), field="audio", target_sr=24000, max_seconds=600)
    before = status()
    t = time.perf_counter()
    y = decode_audio(sys.argv[1], field="audio", target_sr=24000, max_seconds=600)
    seconds = time.perf_counter() - t
    print(json.dumps({"samples": int(y.shape[0]), "seconds": seconds, "rss_start": rss_start,
                      "rss_before": before["VmRSS"], "peak_before": before["VmHWM"],
                      "peak_after": status()["VmHWM"], "finite": bool(np.isfinite(y).all())}))
""")


def test_decoding_100mb_wav_keeps_peak_rss_low(tmp_path):
    sr, frames = 48000, 100 * 1024 * 1024 // 4  # 16-bit stereo: 100 MiB of samples, ~546 s
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(1)
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, subtype="PCM_16", format="WAV") as out:
        step = sr * 30
        t = np.arange(step) / sr
        base = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        for start in range(0, frames, step):
            n = min(step, frames - start)
            noise = rng.integers(-2000, 2000, size=n, dtype=np.int16)
            out.write(np.stack([base[:n] + noise, base[:n] - noise], axis=1))
    assert path.stat().st_size > 100 * 1024 * 1024

    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path), str(ROOT)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    mib = 1024 * 1024
    increase = (r["peak_after"] - r["rss_before"]) / mib  # conservative: peak vs. RSS right before
    print(f"\n100 MiB WAV ({frames / sr:.0f} s 48 kHz stereo) -> 24 kHz mono: "
          f"peak RSS +{increase:.1f} MiB (output {r['samples'] * 4 / mib:.1f} MiB), "
          f"decode {r['seconds']:.2f} s; baseline after imports {r['rss_before'] / mib:.0f} MiB")
    assert r["samples"] == math.ceil(frames / 2) and r["finite"]
    assert increase < 150, r
