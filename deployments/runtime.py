"""What every model deployment sets up the same way: device, dtype, CPU threads, batching knobs."""

from __future__ import annotations

#: Requests each caller (an ingress replica, an entry replica) may queue for one deployment before it
#: refuses the next with a 503 and Retry-After (Serve's ``max_queued_requests``; unbounded by default,
#: so an overloaded replica would keep clients waiting for minutes). The config files set their own.
MAX_QUEUED_REQUESTS = 16


#: oneDNN's primitive cache size in every replica (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``; oneDNN's
#: default is 1024). torch's CPU convolutions build one oneDNN primitive per layer and input shape,
#: and a primitive for a long input holds buffers that grow with its length: a vocoder replica that
#: saw a few dozen 30 s uploads of different lengths kept over 5 GB this way (measured: tiny HiFi-GAN,
#: +300-400 MB per new 30 s length). One pass needs ~100-130 (BigVGAN 127, DualCodec encode+decode
#: 108 at official size) and steps of the same shape reuse them, so 256 keeps every hit inside a
#: request (BigVGAN thrashes at 64) and bounds what lengths seen earlier may hold.
ONEDNN_PRIMITIVE_CACHE = "256"


def select_device(requested: str | None = None) -> str:
    import torch

    if requested and requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


#: ``dtype`` settings of the application (config ``args.dtype``).
DTYPES = ("auto", "float32", "float16", "bfloat16")


def select_dtype(requested: str | None, device: str):
    """The floating-point type model weights run in. ``auto``: float16 on a GPU (how the official
    checkpoints are run by the reference demos; half the memory and the tensor cores), float32 on
    CPU (where half precision is slower, not faster)."""
    import torch

    requested = requested or "auto"
    if requested not in DTYPES:
        raise ValueError(f"dtype: {requested!r} is not one of {', '.join(DTYPES)}")
    if requested == "auto":
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    return getattr(torch, requested)


def configure_torch(threads: int | None) -> None:
    """Pin torch's intra-op threads: several replicas share a machine, and torch would otherwise
    start one thread per core in each of them and fight over the cores."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))


#: glibc malloc settings of a model replica (``mallopt`` parameter -> value). With glibc's defaults
#: every tensor above its dynamic threshold (at most 32 MiB) is a fresh ``mmap`` that is
#: page-faulted in on first touch and unmapped when freed, and freed heap tops are trimmed: a codec or
#: vocoder pass of a few seconds of audio pays that for each of its activations. Here blocks up to
#: 32 MiB come from the heap and stay there for the next request (measured: DualCodec decode and
#: BigVGAN 7-14 % less CPU time, 1 thread; jemalloc, preloaded, gained less: README "Compute").
#: The ingress keeps the opposite settings (serve_app/application.py INGRESS_ENV): its buffers are
#: short-lived uploads whose memory should go back to the OS.
MODEL_MALLOC = {"M_MMAP_THRESHOLD": 32 * 2**20, "M_TRIM_THRESHOLD": 2**30, "M_TOP_PAD": 64 * 2**20}
_MALLOPT_IDS = {"M_TRIM_THRESHOLD": -1, "M_TOP_PAD": -2, "M_MMAP_THRESHOLD": -3}
#: An operator who sets any of these in the environment keeps glibc's reading of it.
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def configure_allocator() -> bool:
    """Apply :data:`MODEL_MALLOC` to this process (glibc only; a no-op elsewhere or when the
    environment sets malloc thresholds). True when applied."""
    import ctypes
    import ctypes.util
    import os
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or any(k in os.environ for k in _MALLOC_ENV):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(_MALLOPT_IDS[name], int(value)) == 1 for name, value in MODEL_MALLOC.items())


def inside_serve() -> bool:
    """`@serve.batch` needs a Serve replica context; elsewhere (tests, scripts, the plain-FastAPI
    baseline) services run requests one by one."""
    try:
        from ray import serve

        serve.get_replica_context()
        return True
    except Exception:
        return False


def apply_batching(config: dict, *batch_methods) -> None:
    """Serve `user_config` -> the `@serve.batch` methods' knobs (``max_batch_size``,
    ``batch_wait_timeout_s``), changed without restarting the replica."""
    for method in batch_methods:
        if "max_batch_size" in config:
            method.set_max_batch_size(int(config["max_batch_size"]))
        if "batch_wait_timeout_s" in config:
            method.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))
