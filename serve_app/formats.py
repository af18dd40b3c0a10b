"""Audio in the format a client asks for (``response_format``), and the time-stretch behind ``speed``.

One table, :data:`FORMATS`, says for every format its media type, file extension, the sample rates
its codec takes, how it is encoded and whether it can be streamed. Everything is encoded by
libraries: libsndfile (through soundfile) writes WAV, FLAC, MP3 and Ogg Opus; PyAV (FFmpeg) writes
ADTS AAC and does the time-stretch (FFmpeg's ``atempo``).

Routes ask the model deployment for a WAV: in the requested WAV sample format when the answer *is*
that WAV (``wav``, ``wav_float``: sent as is, no second encode), otherwise 32-bit float, which
:func:`transcode` re-encodes here in a worker thread (never on the event loop). A codec that does
not take the model's rate (Opus takes 8/12/16/24/48 kHz) gets the audio resampled to
:data:`FALLBACK_RATE`; :class:`Encoded` carries the rate actually sent, for ``X-Sample-Rate``.

Streaming (TTS ``stream=true``) sends raw 16-bit little-endian frames, sentence by sentence,
after :func:`stream_header` (empty for ``pcm``; for ``wav`` a header whose sizes say "unknown
length", so that players start at once and read to the end of the stream).
"""

from __future__ import annotations

import asyncio
import io
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Literal

import numpy as np
import soundfile as sf

from models.audio.wav import encode_wav

__all__ = ["AudioFormat", "Encoded", "FORMATS", "ResponseFormat", "RESPONSE_FORMAT_DOC", "DEFAULT_FORMAT",
           "STREAM_FORMATS", "SPEED_RANGE", "FALLBACK_RATE", "deployment_subtype", "encode", "transcode",
           "decode_wav", "stream_header", "pcm16", "stretch"]

#: Where a codec that does not take the model's rate gets its audio resampled to (every lossy codec
#: here takes 48 kHz, and Opus works at 48 kHz internally anyway).
FALLBACK_RATE = 48000
#: ``speed`` bounds of the time-stretch (OpenAI's).
SPEED_RANGE = (0.25, 4.0)
#: FFmpeg's atempo is best within a factor of 2 either way: larger changes chain several stages.
_ATEMPO_MAX_STEP = 2.0
#: Samples pushed through the time-stretch filter at a time (bounded memory in FFmpeg).
_STRETCH_BLOCK = 1 << 16
#: AAC bit rate (mono speech; transparent well below this).
AAC_BIT_RATE = 96_000
#: The WAV/RIFF value for "size unknown": readers take the data to run to the end of the stream.
_OPEN_ENDED_SIZE = 0xFFFFFFFF

_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)        # MPEG 1, 2 and 2.5
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def _finite(wave: np.ndarray, clip: bool) -> np.ndarray:
    """Mono float32 without NaN/inf (as ``encode_wav`` does it), clipped to full scale for integer
    and lossy codecs."""
    x = np.nan_to_num(np.asarray(wave, dtype=np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(x, -1.0, 1.0) if clip else x


def _soundfile(container: str, subtype: str, **options) -> Callable[[np.ndarray, int], bytes]:
    def write(wave: np.ndarray, sample_rate: int) -> bytes:
        buf = io.BytesIO()
        sf.write(buf, _finite(wave, clip=True), sample_rate, format=container, subtype=subtype, **options)
        return buf.getvalue()
    return write


def _wav(subtype: str) -> Callable[[np.ndarray, int], bytes]:
    return lambda wave, sample_rate: encode_wav(wave, sample_rate, subtype)


def pcm16(wave: np.ndarray, sample_rate: int = 0) -> bytes:
    """Raw signed 16-bit little-endian mono samples (libsndfile's RAW), the ``pcm`` format and the
    body of a streamed WAV. ``sample_rate`` is not stored in raw PCM (it goes in ``X-Sample-Rate``)."""
    buf = io.BytesIO()
    sf.write(buf, _finite(wave, clip=True), max(int(sample_rate), 1), format="RAW", subtype="PCM_16",
             endian="LITTLE")
    return buf.getvalue()


def _flac(wave: np.ndarray, sample_rate: int) -> bytes:
    """16-bit FLAC of exactly the samples the 16-bit WAV has: libsndfile's FLAC writer rounds floats
    differently from its WAV writer (1 LSB apart), so it is given the WAV's integers."""
    buf = io.BytesIO()
    sf.write(buf, np.frombuffer(pcm16(wave, sample_rate), "<i2"), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _aac(wave: np.ndarray, sample_rate: int) -> bytes:
    """ADTS AAC-LC through FFmpeg's native encoder (PyAV rechunks to the codec's frame size)."""
    import av

    x = _finite(wave, clip=True)
    buf = io.BytesIO()
    with av.open(buf, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        stream.bit_rate = AAC_BIT_RATE
        frame = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def _open_ended_wav_header(sample_rate: int) -> bytes:
    """libsndfile's own header of an empty 16-bit mono WAV, with the RIFF and data sizes set to
    0xFFFFFFFF ("unknown"): what a streamed WAV starts with."""
    header = bytearray(encode_wav(np.zeros(0, np.float32), sample_rate, "PCM_16"))
    header[4:8] = _OPEN_ENDED_SIZE.to_bytes(4, "little")
    offset = 12                                     # after "RIFF" <size> "WAVE": walk the chunks
    while offset + 8 <= len(header):
        chunk, size = bytes(header[offset:offset + 4]), int.from_bytes(header[offset + 4:offset + 8], "little")
        if chunk == b"data":
            header[offset + 4:offset + 8] = _OPEN_ENDED_SIZE.to_bytes(4, "little")
            return bytes(header[:offset + 8])
        offset += 8 + size + (size & 1)
    raise RuntimeError("libsndfile wrote a WAV header without a data chunk")


@dataclass(frozen=True)
class AudioFormat:
    name: str
    media_type: str
    extension: str
    summary: str                                      # for the OpenAPI description
    encoder: Callable[[np.ndarray, int], bytes]       # (mono float32 wave, rate) -> bytes
    wav_subtype: str | None = None                    # a WAV the deployment writes itself: sent as is
    sample_rates: tuple[int, ...] | None = None       # rates the codec takes (None: any)
    stream_header: Callable[[int], bytes] | None = None   # streamable: what precedes the PCM frames


_TABLE = (
    AudioFormat("wav", "audio/wav", "wav", "WAV, 16-bit PCM (the default)", _wav("PCM_16"), wav_subtype="PCM_16",
                stream_header=_open_ended_wav_header),
    AudioFormat("wav_float", "audio/wav", "wav", "WAV, 32-bit float", _wav("FLOAT"), wav_subtype="FLOAT"),
    AudioFormat("flac", "audio/flac", "flac", "FLAC, 16-bit", _flac),
    # VBR at LAME's best quality setting (about 75 kbit/s for 24 kHz speech).
    AudioFormat("mp3", "audio/mpeg", "mp3", "MP3 (LAME, VBR)",
                _soundfile("MP3", "MPEG_LAYER_III", bitrate_mode="VARIABLE", compression_level=0.0),
                sample_rates=_MP3_RATES),
    AudioFormat("ogg", "audio/ogg", "ogg", "Opus in Ogg (8/12/16/24/48 kHz: other rates are resampled to 48 kHz)",
                _soundfile("OGG", "OPUS"), sample_rates=_OPUS_RATES),
    AudioFormat("opus", "audio/ogg", "opus", "the same Ogg Opus as `ogg`, named `.opus` (OpenAI's name)",
                _soundfile("OGG", "OPUS"), sample_rates=_OPUS_RATES),
    AudioFormat("aac", "audio/aac", "aac", "AAC-LC in ADTS", _aac, sample_rates=_AAC_RATES),
    AudioFormat("pcm", "audio/pcm", "pcm", "raw 16-bit little-endian mono samples, no header (rate in X-Sample-Rate)",
                pcm16, stream_header=lambda sample_rate: b""),
)
FORMATS: dict[str, AudioFormat] = {f.name: f for f in _TABLE}
DEFAULT_FORMAT = "wav"
#: The ``response_format`` values (FastAPI validates them: anything else is 422; OpenAPI lists them).
ResponseFormat = Literal[tuple(FORMATS)]  # type: ignore[valid-type]
STREAM_FORMATS = tuple(name for name, f in FORMATS.items() if f.stream_header is not None)
RESPONSE_FORMAT_DOC = ("Audio format of the response: " + "; ".join(f"`{f.name}`: {f.summary}" for f in _TABLE)
                       + ". `X-Sample-Rate` gives the rate actually sent; Content-Type and the file name follow the "
                         "format")


@dataclass(frozen=True)
class Encoded:
    data: bytes
    sample_rate: int
    format: AudioFormat

    @property
    def media_type(self) -> str:
        return self.format.media_type

    def filename(self, stem: str) -> str:
        return f"{stem}.{self.format.extension}"


def deployment_subtype(name: str, speed: float = 1.0) -> str:
    """The WAV sample format to ask the model deployment for: the answer itself for a WAV format at
    normal speed, else 32-bit float for :func:`transcode` to work from."""
    subtype = FORMATS[name].wav_subtype
    return subtype if subtype is not None and speed == 1.0 else "FLOAT"


def _resampled(wave: np.ndarray, sample_rate: int, target: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(np.ascontiguousarray(wave, np.float32)), sample_rate, target).numpy()


def encode(wave: np.ndarray, sample_rate: int, name: str) -> Encoded:
    """``wave`` (mono float, any shape with one channel) as ``name``; resampled to
    :data:`FALLBACK_RATE` first when the codec does not take ``sample_rate``. CPU work: call it in
    a thread from async code (:func:`transcode` does)."""
    fmt = FORMATS[name]
    rate = int(sample_rate)
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    if fmt.sample_rates is not None and rate not in fmt.sample_rates:
        x, rate = _resampled(x, rate, FALLBACK_RATE), FALLBACK_RATE
    return Encoded(fmt.encoder(x, rate), rate, fmt)


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """A deployment's WAV bytes as (mono float32 samples, rate)."""
    wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return wave[:, 0], int(rate)


def _transcode(wav: bytes, name: str, speed: float) -> Encoded:
    wave, rate = decode_wav(wav)
    if speed != 1.0:
        wave = stretch(wave, rate, speed)
    return encode(wave, rate, name)


async def transcode(wav: bytes, sample_rate: int, name: str, speed: float = 1.0) -> Encoded:
    """The deployment's answer (WAV bytes, asked for with :func:`deployment_subtype`) as ``name``,
    time-stretched by ``speed``; a WAV already in the asked format is passed through untouched."""
    fmt = FORMATS[name]
    if fmt.wav_subtype is not None and speed == 1.0:
        return Encoded(wav, int(sample_rate), fmt)
    return await asyncio.to_thread(_transcode, wav, name, speed)


def stream_header(name: str, sample_rate: int) -> bytes:
    """What a stream of ``name`` starts with, before the PCM frames (ValueError: not streamable)."""
    header = FORMATS[name].stream_header
    if header is None:
        raise ValueError(f"{name} cannot be streamed; stream one of {', '.join(STREAM_FORMATS)}")
    return header(int(sample_rate))


# ---------------------------------------------------------------------------------------------
# Time-stretch


def _atempo_steps(speed: float) -> list[float]:
    """Equal atempo factors whose product is ``speed``, each within [1/2, 2]."""
    stages = max(1, math.ceil(abs(math.log(speed, _ATEMPO_MAX_STEP)) - 1e-9))
    return [speed ** (1.0 / stages)] * stages


def stretch(wave: np.ndarray, sample_rate: int, speed: float) -> np.ndarray:
    """``wave`` played ``speed`` times faster (0.25..4.0) at the same pitch: duration / speed.

    FFmpeg's ``atempo`` (WSOLA: overlapping windows re-spaced at the new tempo and joined where
    they correlate best), through PyAV; factors beyond 2x either way chain equal stages, each
    within atempo's best range. Not resampling: the pitch and the sample rate stay as they are.
    Returns mono float32; ``speed == 1`` returns the samples unchanged.
    """
    import av
    from av.filter import Graph

    speed = float(speed)
    if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise ValueError(f"speed must be within {SPEED_RANGE[0]} and {SPEED_RANGE[1]}, got {speed:g}")
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    if speed == 1.0 or x.size == 0:
        return x.copy()
    rate = int(sample_rate)
    graph = Graph()
    chain = [graph.add_abuffer(format="flt", sample_rate=rate, layout="mono", time_base=Fraction(1, rate))]
    chain += [graph.add("atempo", tempo=f"{step:.9f}") for step in _atempo_steps(speed)]
    chain.append(graph.add("abuffersink"))
    for upstream, downstream in zip(chain, chain[1:]):
        upstream.link_to(downstream)
    graph.configure()

    out: list[np.ndarray] = []

    def drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            out.append(frame.to_ndarray().reshape(-1))

    for start in range(0, x.size, _STRETCH_BLOCK):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, start:start + _STRETCH_BLOCK]),
                                           format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        graph.push(frame)
        drain()
    graph.push(None)                                 # end of stream: atempo flushes its last window
    drain()
    return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)
