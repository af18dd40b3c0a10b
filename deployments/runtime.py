"""What every model deployment sets up the same way: device, dtype, CPU threads, batching knobs."""

from __future__ import annotations

#: Requests each caller (an ingress replica, an entry replica) may queue for one deployment before it
#: refuses the next with a 503 and Retry-After (Serve's ``max_queued_requests``; unbounded by default,
#: so an overloaded replica would keep clients waiting for minutes). The config files set their own.
MAX_QUEUED_REQUESTS = 16


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
