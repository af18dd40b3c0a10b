"""Codec deployments: ``FACodec`` and ``DualCodec`` (both official DualCodec models in one deployment).

Each batches ``encode`` and ``decode`` calls with ``@serve.batch`` and runs the batch in a worker
thread. Batching never changes a request's result: the models run the parts that couple a batch's
items (FACodec's timbre encoder, padding seen by convolutions) per length group with the encoding a
clip gets alone, so a response is the same whatever else shared its batch.

Wire format (what crosses the handles): audio float32 ``[L]`` at the codec's rate in, codes int64
``[n_codebooks, T]`` and embeddings float32 out; the ingress turns them into the token JSON of
``decisions.md``.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import torch
from ray import serve

from deployments import metrics
from deployments.base import Loaded, Loading, ModelService
from deployments.components import joined_kind
from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.maskgct import SEMANTIC
from deployments.runtime import MAX_QUEUED_REQUESTS, apply_batching, inside_serve
from deployments.topology import Entry, Family
from models.audio.wav import encode_wav

DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_BATCH_WAIT_S = 0.0


class BatchedCodecService(ModelService):
    """What both codec services share: batching, progress, threads (the lifecycle is ModelService's).
    ``max_seconds``: the longest clip a request may hold."""

    compiled_kernels = True
    max_seconds = 60.0

    def __init__(self, **loading):
        self.batched = inside_serve()
        super().__init__(**loading)

    @property
    def codec(self):
        return None if self.loaded is None else self.loaded.model

    # -- to implement ----------------------------------------------------------------------------
    def _facts(self) -> dict:
        raise NotImplementedError

    def _check_encode(self, payload: dict) -> None:
        """Refuse what the model cannot take (InvalidModelInput) before the request joins a batch."""

    def _encode_items(self, payloads: list[dict]) -> list[dict]:
        raise NotImplementedError

    def _decode_items(self, payloads: list[dict]) -> list[np.ndarray]:
        raise NotImplementedError

    # -- deployment API ----------------------------------------------------------------------------
    def reconfigure(self, config: dict) -> None:
        apply_batching(config, self._encode_batch, self._decode_batch)

    async def describe(self) -> dict:
        return {**await super().describe(), "max_seconds": self.max_seconds}

    async def encode(self, payload: dict) -> dict:
        self._require()
        self._check_encode(payload)
        return await self._run(payload, self._encode_batch, self._timed_encode)

    async def decode(self, payload: dict) -> dict:
        self._require()
        return await self._run(payload, self._decode_batch, self._timed_decode)

    async def _run(self, payload: dict, batch_method, items_fn) -> dict:
        if self.batched:
            return await batch_method(payload)
        return (await asyncio.to_thread(items_fn, [payload]))[0]

    def _announce(self, payloads: list[dict], what: str) -> None:
        for p in payloads:
            self.reporter(p.get("task_id")).step(what, 0, 1, f"{self.label}, batch of {len(payloads)}")

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
                 max_concurrent_batches=1)
    async def _encode_batch(self, payloads: list[dict]) -> list[dict]:
        self._announce(payloads, "encoding")
        return await asyncio.to_thread(self._timed_encode, payloads)

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
                 max_concurrent_batches=1)
    async def _decode_batch(self, payloads: list[dict]) -> list[dict]:
        self._announce(payloads, "decoding")
        return await asyncio.to_thread(self._timed_decode, payloads)

    def _timed_encode(self, payloads: list[dict]) -> list[dict]:
        started = time.perf_counter()
        results = self._encode_items(payloads)
        compute_s = time.perf_counter() - started
        metrics.record_stage("encode", compute_s, batch_size=len(payloads))
        return [{**r, "weights": self.weights_kind, "compute_s": compute_s, "batch_size": len(payloads)}
                for r in results]

    def _timed_decode(self, payloads: list[dict]) -> list[dict]:
        started = time.perf_counter()
        waves = self._decode_items(payloads)
        compute_s = time.perf_counter() - started
        metrics.record_stage("decode", compute_s, batch_size=len(payloads))
        rate = self._facts()["sample_rate"]
        return [{"wav": encode_wav(w, rate, p.get("subtype", "PCM_16")), "sample_rate": rate,
                 "duration": len(w) / rate, "weights": self.weights_kind, "compute_s": compute_s,
                 "batch_size": len(payloads)} for w, p in zip(waves, payloads)]


def _padded(rows: list[np.ndarray], dtype) -> tuple[torch.Tensor, list[int]]:
    """Right-pad arrays ``[..., n_i]`` to one tensor ``[B, ..., max n]``; return it and the n_i."""
    lengths = [int(r.shape[-1]) for r in rows]
    out = np.zeros((len(rows), *rows[0].shape[:-1], max(lengths)), dtype=dtype)
    for i, r in enumerate(rows):
        out[i, ..., : r.shape[-1]] = r
    return torch.from_numpy(out), lengths


# ------------------------------------------------------------------------------------------------
# FACodec


class FACodecService(BatchedCodecService):
    """FACodec (NaturalSpeech 3): 16 kHz audio <-> prosody / content / acoustic-detail codes + timbre."""

    label = "FACodec"
    #: Its timbre encoder attends over all frames (80 per second): cost grows with the square of the duration.
    max_seconds = 60.0

    def _load(self, loading: Loading) -> Loaded:
        from models.facodec.codec import load_facodec

        codec, note = load_facodec(loading.weights, device=loading.device, cache_dir=loading.cache_dir)
        return Loaded(codec, codec.weights_kind, note)

    def _facts(self) -> dict:
        c = self.codec
        return {"sample_rate": c.sample_rate, "frame_rate": c.frame_rate, "hop_length": c.hop_length,
                "codebooks": dict(c.codebooks), "codebook_size": dict(c.codebook_size),
                "timbre_dim": c.timbre_dim, "min_samples": c.min_samples()}

    def _check_encode(self, payload: dict) -> None:
        need = self.codec.min_samples()
        if payload["audio"].shape[-1] < need:
            raise InvalidModelInput(f"audio: too short for FACodec (at least {1000 * need / self.codec.sample_rate:.1f} ms)")

    def _encode_items(self, payloads: list[dict]) -> list[dict]:
        wav, lengths = _padded([np.asarray(p["audio"], np.float32)[None] for p in payloads], np.float32)
        out = self.codec.encode(wav, lengths)
        results = []
        for i, frames in enumerate(out["frames"].tolist()):
            results.append({
                "prosody": out["prosody"][i, :, :frames].cpu().numpy(),
                "content": out["content"][i, :, :frames].cpu().numpy(),
                "acoustic": out["acoustic"][i, :, :frames].cpu().numpy(),
                "timbre": out["timbre"][i].float().cpu().numpy(),
                "sample_rate": self.codec.sample_rate, "frame_rate": self.codec.frame_rate,
            })
        return results

    def _decode_items(self, payloads: list[dict]) -> list[np.ndarray]:
        groups = {}
        for name in ("prosody", "content", "acoustic"):
            groups[name], frames = _padded([np.asarray(p[name], np.int64) for p in payloads], np.int64)
        timbre = torch.from_numpy(np.stack([np.asarray(p["timbre"], np.float32) for p in payloads]))
        wav = self.codec.decode(groups["prosody"], groups["content"], groups["acoustic"], timbre, frames)
        hop = self.codec.hop_length
        return [wav[i, 0, : n * hop].float().cpu().numpy() for i, n in enumerate(frames)]


FACodecDeployment = serve.deployment(
    FACodecService, name="FACodec", max_ongoing_requests=32, max_queued_requests=MAX_QUEUED_REQUESTS,
    health_check_period_s=10, graceful_shutdown_timeout_s=120,
    ray_actor_options={"num_cpus": 0.5},
)


# ------------------------------------------------------------------------------------------------
# DualCodec


def covering_length(num_samples: int, config) -> int:
    """Samples to encode so that the codes cover all of ``num_samples`` (``ceil(L / hop)`` frames).

    The reference codes ``(L - 119) // hop`` frames (the w2v-bert frames, pooled, fall short of the DAC
    frames and the last DAC frames are dropped), so a clip of exactly ``n`` hops decodes to ``n - 1``
    hops. The served encode appends silence up to the returned length instead: decoding then gives
    ``ceil(L / hop) * hop - 4`` samples, within one frame of the input."""
    from models.dualcodec.semantic import frame_counts

    target = max(1, -(-num_samples // config.hop_length))
    length = max(num_samples, target * config.hop_length)
    while frame_counts(length, config)[0] < target:
        length += 1
    return length


class DualCodecService(BatchedCodecService):
    """DualCodec, both official models (``12hz_v1``, ``25hz_v1``): 24 kHz audio <-> semantic codes
    (row 0) + acoustic residual codes (rows 1..). The semantic features come from the shared
    w2v-bert deployment (raw layer 17, normalised here with DualCodec's own statistics)."""

    label = "DualCodec"
    #: Its w2v-bert front end attends over all frames (50 per second).
    max_seconds = 120.0

    def __init__(self, components: dict | None = None, **loading):
        self.components = dict(components or {})
        super().__init__(**loading)

    def _load(self, loading: Loading) -> Loaded:
        from models.dualcodec.checkpoints import load_dualcodec_model
        from models.dualcodec.official import OFFICIAL
        from models.maskgct.semantic_encoder import tiny_w2v_bert_config

        # A tiny codec pairs with the tiny w2v-bert (its features are narrower than the official 1024).
        tiny_width = int(tiny_w2v_bert_config().hidden_size)
        loaded = {name: load_dualcodec_model(name, loading.weights, device=loading.device,
                                             cache_dir=loading.cache_dir, tiny_semantic_dim=tiny_width)
                  for name in OFFICIAL}
        notes = "; ".join(f"{name}: {m.note}" for name, m in loaded.items())
        return Loaded(loaded, joined_kind(m.weights_kind for m in loaded.values()), notes)

    def _facts(self) -> dict:
        models = {}
        for name, m in self.codec.items():
            c = m.codec
            models[name] = {"frame_rate": c.frame_rate, "hop_length": c.hop_length,
                            "semantic_codebook_size": c.semantic_codebook_size,
                            "acoustic_codebook_size": c.acoustic_codebook_size,
                            "max_quantizers": c.max_quantizers, "semantic_dim": c.semantic_dim}
        # Any clip is padded to whole frames (covering_length); 10 ms is the least worth a request.
        return {"sample_rate": 24000, "min_samples": 240, "models": models}

    def _model(self, name: str):
        if name not in self.codec:
            raise InvalidModelInput(f"model: must be one of {', '.join(self.codec)}")
        return self.codec[name]

    async def encode(self, payload: dict) -> dict:
        """payload: audio (float32 [L], 24 kHz), model, num_quantizers (None: all), task_id."""
        self._require()
        loaded = self._model(payload["model"])
        codec = loaded.codec
        nq = payload.get("num_quantizers") or codec.max_quantizers
        if not 1 <= nq <= codec.max_quantizers:
            raise InvalidModelInput(f"num_quantizers: must be 1..{codec.max_quantizers} for {payload['model']}")
        audio = np.asarray(payload["audio"], np.float32).reshape(-1)
        padded = np.zeros(covering_length(audio.size, codec.config), np.float32)
        padded[: audio.size] = audio
        wav16k = await asyncio.to_thread(_to_w2v_bert_rate, padded)
        handle = self.components.get(SEMANTIC)
        if handle is None:
            raise ModelUnavailable(f"DualCodec needs the {SEMANTIC} deployment, which is not part of this application")
        hidden = await handle.hidden_states.remote(wav16k)
        if hidden.shape[-1] != loaded.semantic_norm_pool.dim:
            raise ModelUnavailable(
                f"DualCodec ({self.weights_kind} weights) expects {loaded.semantic_norm_pool.dim}-wide w2v-bert features, "
                f"the {SEMANTIC} deployment gives {hidden.shape[-1]}: serve both with official weights "
                "(facebook/w2v-bert-2.0 and amphion/dualcodec) or both tiny")
        item = {"audio": padded, "hidden": np.ascontiguousarray(hidden, np.float32), "model": payload["model"],
                "num_quantizers": int(nq), "task_id": payload.get("task_id")}
        return await self._run(item, self._encode_batch, self._timed_encode)

    def _encode_items(self, payloads: list[dict]) -> list[dict]:
        results: list[dict | None] = [None] * len(payloads)
        # Equal lengths only share a forward pass: the reference cannot batch other lengths exactly.
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(payloads):
            groups.setdefault((p["model"], p["audio"].size, p["num_quantizers"]), []).append(i)
        for (name, _, nq), items in groups.items():
            loaded = self.codec[name]
            audio = torch.from_numpy(np.stack([payloads[i]["audio"] for i in items]))[:, None]
            hidden = torch.from_numpy(np.stack([payloads[i]["hidden"] for i in items]))
            semantic = loaded.semantic_norm_pool(hidden.to(loaded.codec.device))
            sem_codes, ac_codes = loaded.codec.encode(audio.to(loaded.codec.device), semantic, nq)
            for row, i in enumerate(items):
                rows = [sem_codes[row]] + ([] if ac_codes is None else [ac_codes[row]])
                codes = torch.cat(rows, dim=0).cpu().numpy().astype(np.int64)
                results[i] = {"tokens": np.ascontiguousarray(codes), "model": name,
                              "frame_rate": loaded.codec.frame_rate, "sample_rate": 24000,
                              "num_quantizers": int(codes.shape[0])}
        return results  # type: ignore[return-value]

    def _check_decode(self, payload: dict) -> None:
        codec = self._model(payload["model"]).codec
        codes = payload["tokens"]
        sizes = [codec.semantic_codebook_size] + [codec.acoustic_codebook_size] * (codes.shape[0] - 1)
        if codes.shape[0] > codec.max_quantizers:
            raise InvalidModelInput(f"tokens: {codes.shape[0]} codebooks, {payload['model']} has at most {codec.max_quantizers}")
        for row, size in enumerate(sizes):
            if int(codes[row].max()) >= size:
                raise InvalidModelInput(f"tokens: codebook {row} holds codes up to {int(codes[row].max())}, "
                                        f"{payload['model']} has {size} entries")

    async def decode(self, payload: dict) -> dict:
        """payload: tokens (int64 [n_q, T]), model, subtype, task_id."""
        self._require()
        self._check_decode(payload)
        return await self._run(payload, self._decode_batch, self._timed_decode)

    def _decode_items(self, payloads: list[dict]) -> list[np.ndarray]:
        waves: list[np.ndarray | None] = [None] * len(payloads)
        groups: dict[tuple, list[int]] = {}
        for i, p in enumerate(payloads):
            groups.setdefault((p["model"], *p["tokens"].shape), []).append(i)
        for (name, nq, _), items in groups.items():
            codec = self.codec[name].codec
            codes = torch.from_numpy(np.stack([payloads[i]["tokens"] for i in items])).to(codec.device)
            wav = codec.decode(codes[:, :1], codes[:, 1:] if nq > 1 else None)
            for row, i in enumerate(items):
                waves[i] = wav[row, 0].float().cpu().numpy()
        return waves  # type: ignore[return-value]


def _to_w2v_bert_rate(audio_24k: np.ndarray) -> np.ndarray:
    from models.dualcodec.semantic import resample_for_w2v_bert

    return np.ascontiguousarray(resample_for_w2v_bert(torch.from_numpy(audio_24k)).numpy(), dtype=np.float32)


DualCodecDeployment = serve.deployment(
    DualCodecService, name="DualCodec", max_ongoing_requests=32, max_queued_requests=MAX_QUEUED_REQUESTS,
    health_check_period_s=10, graceful_shutdown_timeout_s=120,
    ray_actor_options={"num_cpus": 0.5},
)

FAMILY = Family("codecs", entries=(
    Entry("DualCodec", DualCodecDeployment, models=("dualcodec",), uses=(SEMANTIC,)),
    Entry("FACodec", FACodecDeployment, models=("facodec",)),
))
