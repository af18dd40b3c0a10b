"""Reading uploaded audio (and mel arrays); WAV responses are written by ``models.audio.wav``.

The rules this module implements are part of the API contract:

* The format of an upload is recognised from its bytes, never from its file name or declared MIME
  type.  WAV (RIFF/RIFX/RF64/BW64/W64), MP3 (an ID3 tag or an MPEG audio frame header), FLAC
  ("fLaC", also behind an ID3 tag) and OGG (Vorbis or Opus) are accepted; anything else is refused
  with :class:`UnsupportedMediaType` (HTTP 415).  Vocoder routes also take a ``.npy`` mel array,
  read with :func:`load_npy_mel`.
* A file in an accepted format that cannot be decoded, holds no samples or holds non-finite samples
  is refused with :class:`InvalidAudio` (HTTP 400).  So is audio longer than the field allows,
  unless the caller asked for it to be trimmed.
* Every ``detail`` starts with the name of the form field and never carries a path, a traceback or
  an exception's text.

Memory: uploads arrive as (spooled) files on disk and can be ~100 MB.  :func:`decode_audio` reads
the header first and refuses over-long audio before decoding anything, then decodes in blocks of
about 1 MB, mixes each block down to mono float32 at once and feeds it to a streaming resampler, so
the only large allocation is the mono result at the target rate.  The streaming resampler gives the
same samples as one ``torchaudio.functional.resample`` call over the whole signal (it runs the same
kernel on overlapping segments aligned to the kernel's period).
"""

from __future__ import annotations

import io
import logging
import math
import os
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf

__all__ = [
    "ACCEPTED_AUDIO",
    "UnsupportedMediaType",
    "InvalidAudio",
    "sniff_format",
    "decode_audio",
    "load_npy_mel",
    "wav_duration",
]

log = logging.getLogger(__name__)

ACCEPTED_AUDIO = ("wav", "mp3", "flac", "ogg")

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO, bytes, bytearray, memoryview]

# How many bytes of the upload are read for sniffing.
_HEAD_BYTES = 4096
# Bytes of interleaved float32 decoded per block (the frame count follows from the channel count).
_BLOCK_BYTES = 1 << 20
# Input samples resampled per torch call (rounded to a multiple of the reduced source rate).
_SEGMENT_SAMPLES = 1 << 17
# Sample rates accepted from a file's header.
_MIN_SAMPLE_RATE = 1000
_MAX_SAMPLE_RATE = 384000
# Largest resampling kernel (output phases x taps) we build; larger ones come from odd rates.
_MAX_KERNEL_ELEMENTS = 1_000_000
# Rates that do not reduce against the target are approximated by rounding to these steps (Hz).
_RATE_ROUNDING_STEPS = (10, 25, 50, 100, 200, 400, 800, 1600)
# SF_COUNT_MAX and the like: libsndfile's way of saying "length unknown".
_UNKNOWN_FRAMES = 1 << 62

_FORMAT_NAMES = {"wav": "WAV", "mp3": "MP3", "flac": "FLAC", "ogg": "OGG"}
# libsndfile's major formats, mapped to what we sniff them as.
_SF_MAJOR_TO_KIND = {"WAV": "wav", "WAVEX": "wav", "RF64": "wav", "W64": "wav",
                     "MP3": "mp3", "FLAC": "flac", "OGG": "ogg"}

_W64_RIFF = bytes.fromhex("726966662e91cf11a5d628db04c10000")
_W64_WAVE = bytes.fromhex("77617665f3acd3118cd100c04f8edb8a")
_NPY_MAGIC = b"\x93NUMPY"


class UnsupportedMediaType(Exception):
    """The upload is not in a format the field accepts (HTTP 415)."""

    status_code = 415

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidAudio(Exception):
    """The upload is in an accepted format but unusable (HTTP 400)."""

    status_code = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


# --------------------------------------------------------------------------------------------
# sniffing


def _id3_end(head: bytes) -> int | None:
    """Offset just past the ID3v2 tag that starts ``head``; None when the header is malformed."""
    if len(head) < 10 or head[:3] != b"ID3":
        return None
    major, revision, flags = head[3], head[4], head[5]
    size_bytes = head[6:10]
    if major not in (2, 3, 4) or revision == 0xFF or any(b & 0x80 for b in size_bytes):
        return None
    size = 0
    for b in size_bytes:
        size = (size << 7) | b
    end = 10 + size
    if major == 4 and flags & 0x10:  # footer present
        end += 10
    return end


def _is_mpeg_frame(head: bytes) -> bool:
    """True when ``head`` starts with a plausible MPEG-1/2/2.5 audio frame header."""
    if len(head) < 4 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version = (head[1] >> 3) & 0x3
    layer = (head[1] >> 1) & 0x3
    bitrate_index = head[2] >> 4
    rate_index = (head[2] >> 2) & 0x3
    emphasis = head[3] & 0x3
    # 01 = reserved version, 00 = reserved layer (and AAC's ADTS sync), 1111 = bad bitrate,
    # 11 = reserved sample rate, 10 = reserved emphasis.
    return version != 1 and layer != 0 and bitrate_index != 15 and rate_index != 3 and emphasis != 2


def _sniff_ogg(head: bytes) -> str | None:
    # First page: 27-byte header, then the segment table, then the codec's identification packet.
    if len(head) < 27 or head[4] != 0:  # stream structure version 0 only
        return None
    data = 27 + head[26]
    packet = head[data:data + 8]
    if len(packet) < 8:
        return "ogg"  # too short to tell the codec; decoding decides
    if packet[:7] == b"\x01vorbis" or packet == b"OpusHead":
        return "ogg"
    return None  # Ogg FLAC, Speex, Theora, ...: not accepted


def sniff_format(head: bytes) -> str | None:
    """Recognise an upload from its first bytes (give at least 64 when the file has them).

    Returns ``"wav"``, ``"mp3"``, ``"flac"``, ``"ogg"``, ``"npy"`` or None.  An ID3 tag that runs
    past ``head`` is taken as MP3 (:func:`decode_audio` looks behind long tags itself).
    """
    head = bytes(head)
    if head[:6] == _NPY_MAGIC:
        return "npy"
    if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:16] == _W64_RIFF and head[24:40] == _W64_WAVE:
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return _sniff_ogg(head)
    if head[:3] == b"ID3":
        end = _id3_end(head)
        if end is None:
            return None
        if head[end:end + 4] == b"fLaC":
            return "flac"
        return "mp3"
    if _is_mpeg_frame(head):
        return "mp3"
    return None


def _sniff_file(f: BinaryIO) -> tuple[str | None, int]:
    """Sniff an open file from its start; returns (format, bytes available in the head)."""
    f.seek(0)
    head = f.read(_HEAD_BYTES)
    kind = sniff_format(head)
    if head[:3] == b"ID3" and kind == "mp3":
        end = _id3_end(head)
        if end is not None and end + 4 > len(head):
            f.seek(end)
            if f.read(4) == b"fLaC":
                kind = "flac"
    f.seek(0)
    return kind, len(head)


# --------------------------------------------------------------------------------------------
# opening the source


class _Source:
    """Context manager giving a seekable binary file for a path, bytes or an open file."""

    def __init__(self, path_or_file: PathOrFile):
        self._src = path_or_file
        self._owned: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        src = self._src
        if isinstance(src, (bytes, bytearray, memoryview)):
            return io.BytesIO(bytes(src))
        if isinstance(src, (str, os.PathLike)):
            self._owned = open(src, "rb")
            return self._owned
        if not (hasattr(src, "read") and hasattr(src, "seek")):
            raise TypeError("expected a path, bytes or a seekable binary file")
        return src  # the caller's file: we seek it, but never close it

    def __exit__(self, *exc) -> None:
        if self._owned is not None:
            self._owned.close()


# --------------------------------------------------------------------------------------------
# resampling


def _plan_rates(src_sr: int, target_sr: int) -> int:
    """The source rate to resample from: ``src_sr`` itself, unless the kernel that rate needs
    against ``target_sr`` would be huge (rates with no common factor, e.g. 44101 Hz); those are
    rounded to the nearest multiple of a small step (an error below 0.5 %, inaudible in pitch)."""

    def kernel_elements(sr: int) -> int:
        g = math.gcd(sr, target_sr)
        o, n = sr // g, target_sr // g
        width = math.ceil(6 * o / (0.99 * min(o, n)))
        return n * (o + 2 * width)

    if src_sr == target_sr or kernel_elements(src_sr) <= _MAX_KERNEL_ELEMENTS:
        return src_sr
    for step in _RATE_ROUNDING_STEPS:
        sr = max(step, int(round(src_sr / step)) * step)
        if abs(sr - src_sr) > 0.005 * src_sr:
            break
        if sr == target_sr or kernel_elements(sr) <= _MAX_KERNEL_ELEMENTS:
            return sr
    return 0  # no cheap plan: the caller refuses the rate


class _Sink:
    """Growable float32 buffer; the result is the owned array itself (no final copy)."""

    def __init__(self, capacity: int):
        self.arr = np.empty(max(0, capacity), dtype=np.float32)
        self.n = 0

    def write(self, x: np.ndarray) -> None:
        m = x.shape[0]
        if m == 0:
            return
        need = self.n + m
        if need > self.arr.shape[0]:
            self.arr.resize(max(need, int(self.arr.shape[0] * 1.25) + 4096), refcheck=False)
        self.arr[self.n:need] = x
        self.n = need

    def result(self) -> np.ndarray:
        if self.arr.shape[0] != self.n:
            self.arr.resize(self.n, refcheck=False)  # realloc: shrinks in place
        return self.arr


class _StreamResampler:
    """Resamples a mono stream pushed in arbitrary blocks to exactly what
    ``torchaudio.functional.resample(whole_signal, src_sr, target_sr)`` would give.

    torchaudio computes output block k (``new`` samples, rates reduced by their gcd) from input
    ``x[k*orig - width : k*orig + orig + width]``.  So a segment ``[s, e)`` whose ends are multiples
    of ``orig`` is resampled from ``x[s - ctx : e + ctx]`` with ``ctx >= width`` and the outputs that
    belong to ``[s, e)`` are kept; at the true ends of the signal torchaudio's zero padding applies
    just as it does for the whole signal.
    """

    def __init__(self, src_sr: int, target_sr: int, sink: _Sink):
        import torch
        import torchaudio

        self._torch = torch
        g = math.gcd(src_sr, target_sr)
        self.orig, self.new = src_sr // g, target_sr // g
        self.transform = torchaudio.transforms.Resample(src_sr, target_sr, dtype=torch.float32)
        width = int(self.transform.width)
        self.ctx = self.orig * math.ceil(width / self.orig)
        self.seg = self.orig * max(1, _SEGMENT_SAMPLES // self.orig)
        self.sink = sink
        self.buf = np.empty(0, dtype=np.float32)  # holds x[buf_start : buf_start + len(buf)]
        self.buf_start = 0
        self.next_s = 0  # start of the next segment to emit (a multiple of orig)

    def _resample(self, piece: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            y = self.transform(self._torch.from_numpy(np.ascontiguousarray(piece)))
        return y.numpy()

    def push(self, mono: np.ndarray) -> None:
        self.buf = np.concatenate((self.buf, mono)) if self.buf.shape[0] else mono.copy()
        end = self.buf_start + self.buf.shape[0]
        while end - self.next_s >= self.seg + self.ctx:
            self._emit(self.next_s + self.seg, final=False)

    def finish(self) -> None:
        end = self.buf_start + self.buf.shape[0]
        if end > self.next_s:
            self._emit(end, final=True)
        self.buf = np.empty(0, dtype=np.float32)

    def _emit(self, e: int, final: bool) -> None:
        s, a = self.next_s, self.buf_start
        if final:
            y = self._resample(self.buf)
            off = (s - a) // self.orig * self.new
            self.sink.write(y[off:])
        else:
            y = self._resample(self.buf[: e + self.ctx - a])
            off = (s - a) // self.orig * self.new
            self.sink.write(y[off: off + (e - s) // self.orig * self.new])
        self.next_s = e
        new_start = max(0, e - self.ctx)
        self.buf = self.buf[new_start - a:]
        self.buf_start = new_start


class _Passthrough:
    def __init__(self, sink: _Sink):
        self.sink = sink

    def push(self, mono: np.ndarray) -> None:
        self.sink.write(mono)

    def finish(self) -> None:
        pass


# --------------------------------------------------------------------------------------------
# decoding


def _check_limits(target_sr: int, max_seconds: float) -> None:
    if not isinstance(target_sr, (int, np.integer)) or target_sr <= 0:
        raise ValueError("target_sr must be a positive int")
    if not (isinstance(max_seconds, (int, float)) and math.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError("max_seconds must be a positive finite number")


def decode_audio(
    path_or_file: PathOrFile,
    *,
    field: str,
    target_sr: int,
    max_seconds: float,
    trim: bool = False,
) -> np.ndarray:
    """Decode an uploaded WAV/MP3/FLAC/OGG file to float32 mono at ``target_sr``.

    ``path_or_file`` is a path, bytes, or a seekable binary file holding the whole upload (it is
    read from offset 0; a caller's file is left open).  Audio longer than ``max_seconds`` is refused
    (:class:`InvalidAudio`), or cut to ``max_seconds`` when ``trim`` is true.  Returns a 1-D
    C-contiguous float32 array.
    """
    _check_limits(target_sr, max_seconds)
    target_sr = int(target_sr)
    with _Source(path_or_file) as f:
        kind, head_len = _sniff_file(f)
        if head_len == 0:
            raise InvalidAudio(f"{field}: file is empty")
        if kind not in ACCEPTED_AUDIO:
            raise UnsupportedMediaType(f"{field}: not a WAV, MP3, FLAC or OGG file")
        return _decode_open(f, kind, field=field, target_sr=target_sr,
                            max_seconds=float(max_seconds), trim=trim)


def _decode_open(f: BinaryIO, kind: str, *, field: str, target_sr: int, max_seconds: float,
                 trim: bool) -> np.ndarray:
    cannot = InvalidAudio(f"{field}: could not decode the {_FORMAT_NAMES[kind]} file")
    try:
        snd = sf.SoundFile(f, mode="r")
    except Exception:  # libsndfile's errors quote the source; never pass them on
        log.debug("libsndfile refused a %s upload", kind, exc_info=True)
        raise cannot from None
    with snd:
        sr, channels, frames = int(snd.samplerate), int(snd.channels), int(snd.frames)
        if _SF_MAJOR_TO_KIND.get(snd.format) != kind or channels <= 0:
            raise cannot
        if not _MIN_SAMPLE_RATE <= sr <= _MAX_SAMPLE_RATE:
            raise InvalidAudio(f"{field}: unsupported sample rate {sr} Hz")
        known = 0 <= frames < _UNKNOWN_FRAMES
        limit = int(math.floor(max_seconds * sr + 1e-6))  # most input frames allowed
        too_long = InvalidAudio(f"{field}: audio is longer than {max_seconds:g} s")
        if known and frames > limit and not trim:
            raise too_long  # refused from the header, before decoding anything

        plan_sr = _plan_rates(sr, target_sr)
        if plan_sr == 0:
            raise InvalidAudio(f"{field}: unsupported sample rate {sr} Hz")
        expected_in = min(frames, limit) if known else limit
        if plan_sr == target_sr:
            sink = _Sink(expected_in)
            stage = _Passthrough(sink)
        else:
            sink = _Sink(math.ceil(expected_in * target_sr / plan_sr))
            stage = _StreamResampler(plan_sr, target_sr, sink)

        block_frames = max(256, _BLOCK_BYTES // (4 * channels))
        block = np.empty((block_frames, channels), dtype=np.float32)
        total = 0
        # Reading up to limit + 1 frames tells "exactly at the limit" from "over it".
        wanted = limit if trim else limit + 1
        while total < wanted:
            n = min(block_frames, wanted - total)
            try:
                got = snd.read(n, dtype="float32", always_2d=True, out=block[:n])
            except Exception:
                log.debug("libsndfile failed inside a %s upload", kind, exc_info=True)
                raise cannot from None
            m = got.shape[0]
            if m == 0:
                break
            if total + m > limit:
                if not trim:
                    raise too_long
                m = limit - total
                got = got[:m]
            if channels == 1:
                mono = got[:, 0]
            elif channels == 2:
                mono = got[:, 0] + got[:, 1]
                mono *= np.float32(0.5)
            else:
                mono = got.sum(axis=1, dtype=np.float32)
                mono *= np.float32(1.0 / channels)
            if not np.isfinite(mono).all():
                raise InvalidAudio(f"{field}: audio holds non-finite samples (NaN or infinity)")
            stage.push(mono)
            total += m
    if total == 0:
        raise InvalidAudio(f"{field}: file holds no samples")
    stage.finish()
    out = sink.result()
    if out.shape[0] == 0:
        raise InvalidAudio(f"{field}: file holds no samples")
    return out


# --------------------------------------------------------------------------------------------
# mel arrays


def _read_npy_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        return fmt.read_array_header_1_0(f)
    if version == (2, 0):
        return fmt.read_array_header_2_0(f)
    reader = getattr(fmt, "_read_array_header", None)
    if reader is None:
        raise ValueError("unsupported .npy version")
    return reader(f, version)


def load_npy_mel(path_or_file: PathOrFile, *, field: str, n_mels: int, max_frames: int) -> np.ndarray:
    """Load a ``.npy`` mel spectrogram of shape ``[n_mels, frames]`` as C-contiguous float32.

    Any floating dtype is accepted and cast to float32; integer, complex, structured and object
    (pickled) arrays are refused.  The header is checked before any data is read.
    """
    shape_msg = f"{field}: expected a float mel array of shape [{n_mels}, frames]"
    with _Source(path_or_file) as f:
        f.seek(0)
        head = f.read(_HEAD_BYTES)
        if not head:
            raise InvalidAudio(f"{field}: file is empty")
        if head[:6] != _NPY_MAGIC:
            raise UnsupportedMediaType(f"{field}: not a NumPy .npy file")
        f.seek(0)
        try:
            shape, _fortran, dtype = _read_npy_header(f)
        except Exception:
            raise InvalidAudio(f"{field}: malformed .npy header") from None
        if dtype.hasobject:
            raise InvalidAudio(f"{field}: object (pickled) arrays are not accepted")
        if dtype.kind != "f":
            raise InvalidAudio(f"{shape_msg}, got dtype {dtype.name}")
        if len(shape) != 2 or shape[0] != n_mels:
            raise InvalidAudio(f"{shape_msg}, got shape {list(shape)}")
        if shape[1] == 0:
            raise InvalidAudio(f"{field}: mel array holds no frames")
        if shape[1] > max_frames:
            raise InvalidAudio(f"{field}: mel array has {shape[1]} frames, more than the {max_frames} allowed")
        f.seek(0)
        try:
            arr = np.lib.format.read_array(f, allow_pickle=False)
        except Exception:
            raise InvalidAudio(f"{field}: .npy file is truncated or malformed") from None
    if arr.shape != tuple(shape):
        raise InvalidAudio(f"{field}: .npy file is truncated or malformed")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: refused below
        mel = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(mel).all():
        raise InvalidAudio(f"{field}: mel array holds non-finite values (NaN or infinity)")
    return mel


# --------------------------------------------------------------------------------------------
# durations


def wav_duration(samples, sample_rate) -> float:
    """Seconds of audio in ``samples`` (time on the last axis, as in ``[channels, time]``)."""
    if float(sample_rate) <= 0:
        raise ValueError("sample_rate must be positive")
    shape = np.shape(samples)
    n = shape[-1] if shape else 0
    return n / float(sample_rate)
