"""The start-up download of official files in weights mode ``auto`` (decisions.md: "Weights at
start-up and model selection"), for every service alike.

A service in auto mode first loads from what this machine holds, as it always has, while the weights
resolver notes the official files that were missing but could be downloaded
(:func:`models.weights.noting_missing`). When there are some and downloads are allowed
(``HF_HUB_OFFLINE`` unset), that first load is not served: a worker thread asks the hub what is
missing (sizes; this is also the check that the hub answers), downloads it
(:func:`models.weights.download`, the one fetching path), and loads again. A family may only learn
what else it needs once the first files are there (Metis' stage 1 once MaskGCT's are present), so this
repeats while new files are noted. Meanwhile the service answers 503 "<model>: downloading weights:
42% (...)" and its health says ``downloading``, with the progress; the log shows a tqdm bar. The
replica is up at once: its constructor only starts the thread, so neither its event loop nor its
health check waits for the network.

Where the hub cannot be reached, the first load is served after all (tiny random weights, with the
resolver's warning) and a warning says why; a repo that lacks a file is not a reason to give up (a
diffusers repo has ``.safetensors`` or ``.bin``): that source is skipped and the next load decides.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from models.download_progress import DownloadProgress
from models.weights import (FilesNotFound, HubFiles, WeightsUnavailable, download, noting_missing, plan_download,
                            source_key)

if TYPE_CHECKING:
    from deployments.base import Loaded, Loading, ModelService

log = logging.getLogger("amphion.deployments")

#: Health status of a service fetching its official files.
DOWNLOADING = "downloading"
#: Load-download rounds at most (each round only fetches files no earlier round tried).
MAX_ROUNDS = 4


@dataclass(frozen=True)
class Attempt:
    """One load of a service: what it gave (or why not) and the downloadable files it found missing."""

    loaded: "Loaded | None"
    unavailable: str
    missing: tuple[HubFiles, ...]


def attempt_load(service: "ModelService", loading: "Loading") -> Attempt:
    """``service._load(loading)``, noting the official files its lookups miss."""
    with noting_missing() as noted:
        try:
            loaded, unavailable = service._load(loading), ""
        except (WeightsUnavailable, *service.load_errors) as exc:
            loaded, unavailable = None, str(exc)
    return Attempt(loaded, unavailable, tuple(noted.values()))


class StartupDownload:
    """One service's download and reload, in a daemon thread (:meth:`start`: call it once the service
    holds this object, since ``settle`` may come at once); ``settle`` receives the final attempt.
    ``detail()`` and ``info()`` read the progress from any thread."""

    def __init__(self, label: str, first: Attempt, load: Callable[[], Attempt],
                 settle: Callable[[Attempt], None], cache_dir: str | None = None):
        self.label = label
        self.progress = DownloadProgress(label)
        self._first = first
        self._load = load
        self._settle = settle
        self._cache_dir = cache_dir
        self.thread = threading.Thread(target=self._run, name=f"weights-download {label}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def detail(self) -> str:
        return f"downloading weights: {self.progress.summary()}"

    def info(self) -> dict:
        return {"status": DOWNLOADING, "running": True, "weights": None, "detail": self.detail(),
                "progress": self.progress.as_dict()}

    # -- the worker --------------------------------------------------------------------------------
    def _run(self) -> None:
        attempt, self._first = self._first, None
        tried: set[tuple] = set()
        try:
            for _ in range(MAX_ROUNDS):
                todo = [f for f in attempt.missing if source_key(f) not in tried]
                tried.update(source_key(f) for f in todo)
                if not todo or not self._fetch(todo):
                    break
                attempt = None  # the earlier load is not needed any more: free it before loading again
                attempt = self._load()
        except Exception as exc:  # a corrupt download or a bug: the replica stays up and says so
            log.exception("%s: loading the downloaded weights failed", self.label)
            attempt = Attempt(None, f"the downloaded weights could not be loaded ({type(exc).__name__}); "
                                    "see the replica log", ())
        finally:
            self.progress.close()
            self._settle(attempt)

    def _fetch(self, todo: list[HubFiles]) -> bool:
        """Download ``todo``; False (with a warning) when the hub cannot be reached."""
        progress, earlier = DownloadProgress(self.label), self.progress
        self.progress = progress
        earlier.close()
        planned: list[tuple[HubFiles, int]] = []
        try:
            for files in todo:
                try:
                    planned.append((files, plan_download(files, cache_dir=self._cache_dir)))
                except FilesNotFound as exc:
                    log.info("%s: not downloading %s: %s", self.label, files.label, exc)
            progress.plan(sum(size for _, size in planned))
            log.info("%s: downloading official files (%s): %s", self.label, progress.summary(),
                     ", ".join(files.label for files, _ in planned))
            for files, _ in planned:
                try:
                    download(files, cache_dir=self._cache_dir, progress=progress)
                except FilesNotFound as exc:
                    log.info("%s: %s", self.label, exc)
                    progress.source_done()
        except WeightsUnavailable as exc:
            log.warning("%s: official files cannot be downloaded (%s); serving what this machine has",
                        self.label, exc)
            return False
        except Exception:  # noqa: BLE001 - whatever the hub client raises: the same as an unreachable hub
            log.exception("%s: downloading official files failed; serving what this machine has", self.label)
            return False
        log.info("%s: official files downloaded; loading them", self.label)
        return True
