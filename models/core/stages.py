"""What every family's orchestration shares: arrays as they cross a handle, the random state as it
travels between stages, and running a family's stages in process.

A family's orchestrator is a coroutine over its stages protocol; in process its ``LocalStages``
(plain synchronous methods, numpy in and out) are wrapped by :class:`InlineStages` and
:func:`run_inline` drives the coroutine without an event loop, since it never suspends.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "InlineStages",
    "ProgressFn",
    "float32",
    "generator_state",
    "in_thread",
    "inline",
    "int64",
    "run_inline",
    "stage_generator",
    "step_reporter",
]

#: ``on_progress(stage, step, total)``.
ProgressFn = Callable[[str, int, int], None]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# arrays across handles


def int64(x) -> np.ndarray:
    """Tokens or codes as they cross a handle: contiguous int64 numpy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.int64)


def float32(x) -> np.ndarray:
    """Audio or features as they cross a handle: contiguous float32 numpy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# randomness across stages


def stage_generator(request: dict, device: str | torch.device) -> torch.Generator | None:
    """The generator a stage draws from: the state it was handed (``rng``), else a new one seeded
    with ``seed`` on ``device``, else None (torch's global RNG).

    A CUDA state handed to a replica without CUDA continues on a CPU generator seeded from that
    state: deterministic (the same seed gives the same audio for a given deployment layout), but a
    different stream of draws from running every stage on one device."""
    rng = request.get("rng")
    if rng is not None:
        kind = str(rng["device"])
        state = torch.from_numpy(np.ascontiguousarray(rng["state"], dtype=np.uint8))
        if kind == "cuda" and not torch.cuda.is_available():
            digest = hashlib.sha256(state.numpy().tobytes()).digest()
            return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        gen = torch.Generator(device=kind)
        gen.set_state(state)
        return gen
    seed = request.get("seed")
    if seed is None:
        return None
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def generator_state(gen: torch.Generator | None) -> dict | None:
    """What a stage hands on as ``rng``: ``{"device": "cpu" | "cuda", "state": uint8 array}``."""
    if gen is None:
        return None
    return {"device": gen.device.type, "state": np.ascontiguousarray(gen.get_state().numpy(), dtype=np.uint8)}


# ---------------------------------------------------------------------------------------------
# progress


def step_reporter(stage: str, emit: ProgressFn | None) -> Callable[[int, int], None] | None:
    """A model's ``(step, total)`` callback reporting as ``stage`` to ``emit`` (None without one)."""
    if emit is None:
        return None
    return lambda step, total: emit(stage, int(step), int(total))


# ---------------------------------------------------------------------------------------------
# running stages in process


def _inline_stage(name: str, generating: bool):
    if generating:
        async def stage(self, *args, **kwargs):
            return getattr(self.local, name)(*args, self.on_progress, **kwargs)
    else:
        async def stage(self, *args, **kwargs):
            return getattr(self.local, name)(*args, **kwargs)
    stage.__name__ = stage.__qualname__ = name
    stage.__doc__ = f"``{name}`` of the local stages, as a coroutine that never suspends."
    return stage


class InlineStages:
    """A family's ``LocalStages`` as coroutines that never suspend (for :func:`run_inline`).

    A family declares its version as ``class InlineStages(core.InlineStages, local=LocalStages)``:
    every public method of ``LocalStages`` (its own or inherited) becomes a stage, and those named in its ``GENERATING``
    (a frozenset) also receive ``on_progress``, after their own arguments."""

    def __init_subclass__(cls, *, local: type | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if local is None:
            return
        generating = frozenset(getattr(local, "GENERATING", ()))
        # Inherited stages count too: a family may extend another's (Metis over MaskGCT's).
        names = {n for klass in local.__mro__[:-1] for n, v in vars(klass).items()
                 if callable(v) and not n.startswith("_")}
        unknown = generating - names
        if unknown:
            raise TypeError(f"{local.__name__}.GENERATING names no stage: {sorted(unknown)}")
        for name in sorted(names):
            setattr(cls, name, _inline_stage(name, name in generating))

    def __init__(self, local, on_progress: ProgressFn | None = None) -> None:
        self.local = local
        self.on_progress = on_progress


def run_inline(coro: Awaitable[T]) -> T:
    """Run a coroutine that never suspends (all its stages are :class:`InlineStages`) to its end,
    here, without an event loop: works from plain threads and from inside a running loop alike."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("an inline stage suspended; in-process stages must not wait on anything")


async def inline(fn: Callable[..., T], *args) -> T:
    """Offload that runs CPU work right here (an orchestrator's default)."""
    return fn(*args)


async def in_thread(fn: Callable[..., T], *args) -> T:
    """Offload for an event loop that must stay free: CPU work in a worker thread."""
    return await asyncio.to_thread(fn, *args)
