"""What every model deployment sets up the same way: device, CPU threads, the progress store."""

from __future__ import annotations

import logging

log = logging.getLogger("amphion.deployments")


def select_device(requested: str | None = None) -> str:
    import torch

    if requested and requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def configure_torch(threads: int | None) -> None:
    """Pin torch's intra-op threads: several replicas share a machine, and torch would otherwise
    start one thread per core in each of them and fight over the cores."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))


def progress_store():
    """The shared progress store when running inside Ray; None (no progress events) otherwise."""
    try:
        import ray

        if ray.is_initialized():
            from serve_app.state import connect_store

            return connect_store()
    except Exception:
        log.exception("progress store unavailable; this replica will not report progress")
    return None
