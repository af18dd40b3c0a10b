"""Where a model's weights come from: the official Hugging Face release, a local folder, or nothing.

Every model is described by a :class:`HubFiles` entry (the official repo id and the files its loader
needs, as glob patterns). :func:`resolve` turns an entry and a weights mode into
:class:`ResolvedWeights`: ``"pretrained"`` (a local folder, else the hub or its cache; otherwise
:class:`WeightsUnavailable`, whose message can be shown to users), ``"tiny"`` (no files: the tiny
profile with seeded weights) or ``"auto"`` (``"pretrained"`` without network access, else ``"tiny"``
with a warning; the resolver itself never downloads). :func:`resolve_parts` does this for a pipeline's
parts without ever mixing kinds.

Fetching is one code path for every model: :func:`plan_download` (bytes still missing; also the check
that the hub answers) and :func:`download` (into the Hugging Face cache, or the pinned files' cache),
used by ``scripts/download_weights.py`` and by a service's start-up download in auto mode
(``deployments.fetching``), which learns what to fetch from :func:`noting_missing`: every lookup that
finds downloadable files missing notes them. The search order and environment variables:
``models/core/README.md``.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence

from models.pinned import PinnedFilesUnavailable, PinnedSource

if TYPE_CHECKING:
    from models.download_progress import DownloadProgress

__all__ = [
    "WEIGHTS_MODES",
    "HubFiles",
    "ResolvedWeights",
    "WeightsUnavailable",
    "FilesNotFound",
    "resolve",
    "download",
    "plan_download",
    "noting_missing",
    "source_key",
    "downloads_allowed",
    "find_local",
    "default_cache_dir",
]

logger = logging.getLogger("amphion.weights")

WEIGHTS_MODES = ("pretrained", "tiny", "auto")

#: Environment variable naming a folder that holds one sub-folder per repo id (``<dir>/<org>/<name>``).
WEIGHTS_DIR_ENV = "AMPHION_WEIGHTS_DIR"
#: Environment variable naming the Hugging Face cache folder used by this app (instead of HF's default).
HF_CACHE_ENV = "AMPHION_HF_CACHE"

TINY_NOTE = "tiny profile: seeded random weights"

_DOWNLOAD_HINT = "run scripts/download_weights.py (with the model's name, or --all) where the hub is reachable"


class WeightsUnavailable(RuntimeError):
    """The weights asked for cannot be had. The message is safe to show to users: it names repo ids,
    file patterns and environment variables, never a folder of the server."""


class FilesNotFound(WeightsUnavailable):
    """A folder or repo was read but holds no file matching some of the patterns (as opposed to a
    hub that cannot be reached)."""


@dataclass(frozen=True)
class HubFiles:
    """The official files of one model."""

    repo_id: str | None
    """Official Hugging Face repo id; None when there is no official release (local folder only)."""
    patterns: tuple[str, ...]
    """Glob patterns relative to the repo root (``fnmatch`` style, as ``snapshot_download``'s
    ``allow_patterns``: ``*`` also matches ``/``); each must match at least one file."""
    local_dir_env: str | None = None
    """Environment variable naming a local folder laid out like the repo."""
    revision: str | None = None
    """Branch, tag or commit of the repo; None means the default branch."""
    pinned: PinnedSource | None = None
    """For files published in a code repository, not on the hub (``repo_id`` None): where, at which
    commit, with which hashes. The patterns are then the pinned files' names."""
    repo_type: str = "model"
    """The hub's kind of repo: ``model``, or ``space`` for files a demo Space publishes (PicoAudio)."""

    def __post_init__(self) -> None:
        if isinstance(self.patterns, str):  # a lone pattern would otherwise be iterated char by char
            raise TypeError("HubFiles.patterns must be a tuple of glob patterns, not a string")
        object.__setattr__(self, "patterns", tuple(self.patterns))

    @property
    def label(self) -> str:
        """How to name these weights in messages: the repo id, else the env var, else a generic name."""
        if self.repo_id:
            return self.repo_id
        if self.pinned is not None:
            return self.pinned.label
        if self.local_dir_env:
            return f"${self.local_dir_env}"
        return "local weights"


@dataclass(frozen=True)
class ResolvedWeights:
    kind: str
    """``"pretrained"`` or ``"tiny"``."""
    root: Path | None
    """Folder laid out like the official repo (pretrained only)."""
    note: str
    """Human readable, safe to show users: where the weights come from, or why they are tiny."""

    @property
    def pretrained(self) -> bool:
        return self.kind == "pretrained"

    def files(self, pattern: str) -> list[Path]:
        """Sorted files under :attr:`root` whose repo-relative path matches ``pattern``."""
        if self.root is None:
            raise WeightsUnavailable(f"{self.kind} weights have no files ({self.note})")
        return _match(self.root, pattern)

    def file(self, pattern: str) -> Path:
        """The single file matching ``pattern``; WeightsUnavailable if none or several match."""
        found = self.files(pattern)
        if len(found) != 1:
            rel = [p.relative_to(self.root).as_posix() for p in found]  # type: ignore[arg-type]
            raise WeightsUnavailable(
                f"expected exactly one file matching {pattern!r} in the weights, found {len(found)}"
                + (f": {', '.join(rel[:5])}" if rel else "")
            )
        return found[0]


# ----------------------------------------------------------------------------------------------------
# public entry points


def resolve(
    files: HubFiles,
    mode: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    local_dir: str | os.PathLike | None = None,
) -> ResolvedWeights:
    """Resolve ``files`` for ``mode`` (one of :data:`WEIGHTS_MODES`). See the module docstring."""
    if mode not in WEIGHTS_MODES:
        raise ValueError(f"unknown weights mode {mode!r}; expected one of {', '.join(WEIGHTS_MODES)}")
    if mode == "tiny":
        return ResolvedWeights("tiny", None, TINY_NOTE)
    if mode == "pretrained":
        return _resolve_pretrained(files, cache_dir=cache_dir, local_dir=local_dir, network=True)
    # auto
    try:
        return _resolve_pretrained(files, cache_dir=cache_dir, local_dir=local_dir, network=False)
    except WeightsUnavailable as exc:
        return _tiny_instead(files, exc)


def _tiny_instead(files: HubFiles, exc: WeightsUnavailable) -> ResolvedWeights:
    """Mode auto without the official files: tiny, with the warning saying which files and why."""
    reason = str(exc)
    if reason.startswith(f"{files.label}: "):
        reason = reason[len(files.label) + 2 :]
    note = f"official weights for {files.label} not present; serving tiny random weights ({reason})"
    logger.warning("%s", note)
    return ResolvedWeights("tiny", None, note)


def find_local(
    files: HubFiles,
    *,
    cache_dir: str | os.PathLike | None = None,
    local_dir: str | os.PathLike | None = None,
) -> ResolvedWeights:
    """The official weights if they are already on this machine (no network), else WeightsUnavailable.

    Same lookup as mode ``"auto"`` but raising instead of falling back, and without logging."""
    return _resolve_pretrained(files, cache_dir=cache_dir, local_dir=local_dir, network=False)


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face cache folder used for ``cache_dir`` (argument, ``$AMPHION_HF_CACHE``, HF default)."""
    chosen = _cache_dir(cache_dir)
    if chosen is not None:
        return Path(chosen).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def download(files: HubFiles, *, cache_dir: str | os.PathLike | None = None,
             progress: "bool | DownloadProgress" = True) -> Path:
    """Download the official files of ``files`` into the Hugging Face cache (pinned files: into their
    cache folder); return the folder. ``progress``: huggingface_hub's own bars (True), none (False),
    or a :class:`~models.download_progress.DownloadProgress` that counts the bytes (and is told when
    this source is complete).

    Raises WeightsUnavailable when the model has no official release, on any hub or network error,
    and when a pattern matches no file of the repo."""
    counter = None if isinstance(progress, bool) else progress
    if files.pinned is not None:
        root = _pinned_folder(files, network=not _hub_offline(), progress=progress is True,
                              on_bytes=None if counter is None else counter.add)
    elif not files.repo_id:
        raise WeightsUnavailable(_no_release_message(files))
    elif counter is not None:
        root = _snapshot(files, cache_dir=cache_dir, local_files_only=_hub_offline(), purpose="download",
                         tqdm_class=counter.tqdm_class)
    else:
        root = _snapshot_with_bars(files, cache_dir=cache_dir, shown=progress is True)
    if files.repo_id:
        _check_patterns(files, root, where=f"{files.repo_id} (downloaded snapshot)")
    if counter is not None:
        counter.source_done()
    return root


def plan_download(files: HubFiles, *, cache_dir: str | os.PathLike | None = None) -> int:
    """Bytes :func:`download` would fetch for ``files`` (0 when all are here). For a hub repo this asks
    the hub (file list and sizes, nothing downloaded): WeightsUnavailable when it cannot be reached."""
    if files.pinned is not None:
        return files.pinned.missing_bytes()
    if not files.repo_id:
        raise WeightsUnavailable(_no_release_message(files))
    from models.download_progress import SilentBar

    planned = _snapshot(files, cache_dir=cache_dir, local_files_only=_hub_offline(), purpose="download",
                        dry_run=True, tqdm_class=SilentBar)
    return sum(f.file_size or 0 for f in planned if f.will_download)


def downloads_allowed() -> bool:
    """Whether this process may try the network for official files (HF_HUB_OFFLINE is not set)."""
    return not _hub_offline()


# ----------------------------------------------------------------------------------------------------
# what an auto-mode load found missing

#: The files noted in this context (see :func:`noting_missing`), by :func:`source_key`; None: not noting.
_NOTED: ContextVar[dict | None] = ContextVar("amphion_weights_noted", default=None)


@contextmanager
def noting_missing() -> Iterator[dict[tuple, HubFiles]]:
    """While active, every lookup in this context (thread) that finds official files missing from this
    machine although they could be downloaded (a hub repo, or pinned files; no local folder configured
    for them) notes them in the yielded dict: what an auto-mode service fetches in the background."""
    noted: dict[tuple, HubFiles] = {}
    token = _NOTED.set(noted)
    try:
        yield noted
    finally:
        _NOTED.reset(token)


def source_key(files: HubFiles) -> tuple:
    """What tells two official file sets apart (HubFiles holds a mapping, so it is not hashable)."""
    pinned = None if files.pinned is None else (files.pinned.name, files.pinned.commit)
    return (files.repo_type, files.repo_id, files.revision, files.patterns, pinned)


def _note_missing(files: HubFiles) -> None:
    noted = _NOTED.get()
    if noted is not None:
        noted.setdefault(source_key(files), files)


# ----------------------------------------------------------------------------------------------------
# internals


def _resolve_pretrained(files: HubFiles, *, cache_dir, local_dir, network: bool) -> ResolvedWeights:
    found = _local_folder(files, local_dir)
    if found is not None:
        root, source = found
        if not root.is_dir():
            raise WeightsUnavailable(f"{files.label}: the weights folder given by {source} does not exist")
        _check_patterns(files, root, where=f"{files.label} (folder given by {source})")
        return ResolvedWeights("pretrained", root, f"official weights for {files.label} from the folder given by {source}")

    if files.pinned is None and not files.repo_id:
        raise WeightsUnavailable(_no_release_message(files))
    try:
        return _from_source(files, cache_dir=cache_dir, network=network)
    except WeightsUnavailable:
        if not network:  # a lookup on this machine only: what a download would bring
            _note_missing(files)
        raise


def _from_source(files: HubFiles, *, cache_dir, network: bool) -> ResolvedWeights:
    """The files from the pinned files' cache or the Hugging Face cache (downloading when ``network``)."""
    if files.pinned is not None:
        root = _pinned_folder(files, network=network and not _hub_offline(), progress=False)
        return ResolvedWeights("pretrained", root, f"official files {files.label}")

    local_only = (not network) or _hub_offline()
    root = _snapshot(files, cache_dir=cache_dir, local_files_only=local_only, purpose="resolve" if network else "auto")
    if local_only:
        _check_patterns(files, root, where=f"{files.repo_id} (Hugging Face cache)", hint=True)
    else:
        _check_patterns(files, root, where=f"{files.repo_id} (official repo)")
    return ResolvedWeights(
        "pretrained",
        root,
        f"official weights {files.repo_id}@{_short_rev(root, files)} from the Hugging Face cache",
    )


def _pinned_folder(files: HubFiles, *, network: bool, progress: bool, on_bytes=None) -> Path:
    """The pinned files' cache folder, downloaded into when ``network`` allows."""
    pinned = files.pinned
    assert pinned is not None
    folder = pinned.cache_folder()
    if not pinned.missing(folder):
        return folder
    if not network:
        alt = f", or set ${files.local_dir_env} to a folder holding them" if files.local_dir_env else ""
        raise WeightsUnavailable(f"{files.label}: {', '.join(pinned.missing(folder))} not downloaded yet; "
                                 f"{_DOWNLOAD_HINT}{alt}")
    try:
        return pinned.download(folder, progress=progress, on_bytes=on_bytes)
    except PinnedFilesUnavailable as exc:
        raise WeightsUnavailable(f"{files.label}: {exc}") from None


def _local_folder(files: HubFiles, local_dir) -> tuple[Path, str] | None:
    """The configured local folder and a user-safe description of where it was configured."""
    if local_dir is not None and str(local_dir) != "":
        return Path(local_dir).expanduser(), "the local_dir setting"
    if files.local_dir_env:
        value = os.environ.get(files.local_dir_env, "").strip()
        if value:
            return Path(value).expanduser(), f"${files.local_dir_env}"
    base = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    if base and files.repo_id:
        candidate = Path(base).expanduser() / files.repo_id
        if candidate.is_dir():
            return candidate, f"${WEIGHTS_DIR_ENV}/{files.repo_id}"
    return None


def _cache_dir(cache_dir) -> str | None:
    if cache_dir is not None and str(cache_dir) != "":
        return os.fspath(cache_dir)
    env = os.environ.get(HF_CACHE_ENV, "").strip()
    return env or None


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub understands it, read now (the library reads it at import)."""
    raw = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if raw is not None and raw.strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return False
    checker = getattr(constants, "is_offline_mode", None)
    return bool(checker() if callable(checker) else getattr(constants, "HF_HUB_OFFLINE", False))


def _offline_label() -> str:
    return f"HF_HUB_OFFLINE={'1' if _hub_offline() else '0'}"


def _snapshot_with_bars(files: HubFiles, *, cache_dir, shown: bool) -> Path:
    """:func:`_snapshot` with huggingface_hub's own progress bars shown or not."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not shown:
        disable_progress_bars()
    try:
        return _snapshot(files, cache_dir=cache_dir, local_files_only=_hub_offline(), purpose="download")
    finally:
        if not shown and not was_disabled:
            enable_progress_bars()


def _snapshot(files: HubFiles, *, cache_dir, local_files_only: bool, purpose: str, **options):
    """snapshot_download restricted to the patterns (``options``: its ``tqdm_class``, ``dry_run``);
    hub and network errors become WeightsUnavailable."""
    assert files.repo_id
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HFValidationError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise WeightsUnavailable(f"{files.repo_id}: huggingface_hub is not installed") from exc

    try:
        path = snapshot_download(
            files.repo_id,
            repo_type=files.repo_type,
            revision=files.revision,
            cache_dir=_cache_dir(cache_dir),
            allow_patterns=list(files.patterns) or None,
            local_files_only=local_files_only,
            **options,
        )
    except (HFValidationError, TypeError):
        # a malformed repo id or bad arguments: a bug of the model table, not an unreachable hub
        raise
    except GatedRepoError as exc:
        _log_hub_error(files, exc)
        raise WeightsUnavailable(
            f"{files.repo_id}: the repo is gated on the hub; accept its terms and set HF_TOKEN, then {_DOWNLOAD_HINT}"
        ) from exc
    except RepositoryNotFoundError as exc:
        _log_hub_error(files, exc)
        raise WeightsUnavailable(f"{files.repo_id}: repository not found on the hub (or private: set HF_TOKEN)") from exc
    except RevisionNotFoundError as exc:
        _log_hub_error(files, exc)
        raise WeightsUnavailable(f"{files.repo_id}: revision {files.revision!r} not found on the hub") from exc
    except Exception as exc:  # noqa: BLE001 - any other hub/network/cache error: the weights cannot be had
        _log_hub_error(files, exc)
        raise WeightsUnavailable(_unreachable_message(files, purpose, exc)) from exc
    return path if options.get("dry_run") else Path(path)


def _log_hub_error(files: HubFiles, exc: BaseException) -> None:
    # the full error (with cache paths and URLs) goes to the server log only, never into the message
    logger.debug("snapshot_download(%s) failed: %s: %s", files.repo_id, type(exc).__name__, exc, exc_info=exc)


def _unreachable_message(files: HubFiles, purpose: str, exc: BaseException) -> str:
    kind = type(exc).__name__
    needed = f"{files.repo_id} ({', '.join(files.patterns)})"   # which files, so operators can fetch them
    if purpose == "auto":
        return f"{needed}: not in the Hugging Face cache; {_DOWNLOAD_HINT}"
    if purpose == "download":
        return f"{needed}: download failed, the hub is unreachable or refused ({_offline_label()}; {kind})"
    alt = f"point ${files.local_dir_env} at a folder laid out like the repo, or " if files.local_dir_env else ""
    return (
        f"{needed}: official weights not found in the cache and the hub is unreachable "
        f"({_offline_label()}; {kind}); {_DOWNLOAD_HINT}, or {alt}put the repo's files under "
        f"${WEIGHTS_DIR_ENV}/{files.repo_id}"
    )


def _no_release_message(files: HubFiles) -> str:
    if files.local_dir_env:
        return (
            f"{files.label}: these weights have no official Hugging Face release; set ${files.local_dir_env} "
            f"to a folder holding {', '.join(files.patterns)}"
        )
    return f"{files.label}: these weights have no official Hugging Face release and no local folder is configured"


def _check_patterns(files: HubFiles, root: Path, *, where: str, hint: bool = False) -> None:
    missing = [p for p in files.patterns if not _match(root, p)]
    if missing:
        msg = f"{where}: no file matches {', '.join(repr(p) for p in missing)}"
        if hint and files.repo_id:
            msg += f"; {_DOWNLOAD_HINT}"
        raise FilesNotFound(msg)


def _short_rev(root: Path, files: HubFiles) -> str:
    # snapshot folders are named by the full commit hash
    name = root.name
    if len(name) == 40 and all(c in "0123456789abcdef" for c in name):
        return name[:10]
    return files.revision or "main"


def _repo_files(root: Path) -> Iterable[str]:
    """Repo-relative POSIX paths of the files under ``root`` (following symlinks, as in the HF cache)."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        if rel_dir == ".":
            # metadata that snapshot_download(local_dir=...) leaves at the top of a local copy
            dirnames[:] = [d for d in dirnames if d != ".cache"]
            rel_dir = ""
        dirnames.sort()
        for name in sorted(filenames):
            if os.path.isfile(os.path.join(dirpath, name)):  # skips dangling symlinks
                yield f"{rel_dir}/{name}" if rel_dir else name


def _match(root: Path, pattern: str) -> list[Path]:
    """Files under ``root`` matching ``pattern`` with snapshot_download's allow_patterns semantics."""
    rels = list(_repo_files(root))
    try:
        from huggingface_hub.utils import filter_repo_objects
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        import fnmatch

        pat = pattern + "*" if pattern.endswith("/") else pattern
        matched = [r for r in rels if fnmatch.fnmatchcase(r, pat)]
    else:
        matched = list(filter_repo_objects(rels, allow_patterns=[pattern]))
    return sorted(root / r for r in matched)


def resolve_parts(
    mode: str,
    official: Mapping[str, HubFiles],
    part_files: Mapping[str, Sequence[str]],
    parts: Sequence[str],
    *,
    cache_dir: str | os.PathLike | None = None,
    local_dirs: Mapping[str, str | os.PathLike] | None = None,
) -> tuple[str, dict[str, ResolvedWeights], str]:
    """``(kind, found, note)`` for some ``parts`` of a pipeline whose parts are loaded separately
    (each by its own deployment): ``part_files`` maps a part to its ``official`` entries; ``kind`` is
    ``"pretrained"`` (``found``: the resolved entries of those parts) or ``"tiny"``.

    Separately loaded parts must never be mixed, so ``"auto"`` looks for EVERY part's official files
    (on this machine only) and goes tiny as soon as one is missing, whichever parts are asked for:
    every deployment of the pipeline comes to the same answer. ``"pretrained"`` resolves (and may
    download) only the parts' own files; WeightsUnavailable when one is missing. ``local_dirs``:
    entry key -> a folder laid out like its repo."""
    if mode not in WEIGHTS_MODES:
        raise ValueError(f"unknown weights mode {mode!r}; expected one of {', '.join(WEIGHTS_MODES)}")
    local_dirs = dict(local_dirs or {})
    unknown = set(local_dirs) - set(official)
    if unknown:
        raise ValueError(f"local_dirs: unknown entries {sorted(unknown)}; known: {', '.join(official)}")
    if mode == "tiny":
        return "tiny", {}, TINY_NOTE
    keys = [k for part, files in part_files.items() if part in parts for k in files]
    found: dict[str, ResolvedWeights] = {}
    if mode == "auto":
        first_missing: tuple[str, WeightsUnavailable] | None = None
        # every component is looked up (so that all the missing ones are noted for a download),
        # and one missing component makes it all tiny
        for key in dict.fromkeys(k for files in part_files.values() for k in files):
            try:
                found[key] = find_local(official[key], cache_dir=cache_dir, local_dir=local_dirs.get(key))
            except WeightsUnavailable as exc:
                first_missing = first_missing or (key, exc)
        if first_missing is not None:
            return "tiny", {}, _tiny_instead(official[first_missing[0]], first_missing[1]).note
    else:
        for key in keys:
            found[key] = resolve(official[key], mode, cache_dir=cache_dir, local_dir=local_dirs.get(key))
    found = {k: found[k] for k in keys}
    return "pretrained", found, next(iter(found.values())).note if found else "pretrained weights"
