"""Files a model needs that are published inside a code repository rather than on the Hugging Face
hub (MaskGCT's G2P tables and w2v-bert statistics, VevoSing's Whisper statistics, ...).

A :class:`PinnedSource` names them at one commit, each with its SHA-256 and size: a moved or changed
upstream file is refused rather than silently changing what the models were trained with. Downloads
go to ``$AMPHION_DATA_CACHE`` (default ``~/.cache/amphion``) ``/<name>/<commit[:10]>/``, one file at a
time through a temporary file renamed into place, so an interrupted download leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

CACHE_ENV = "AMPHION_DATA_CACHE"

AMPHION_COMMIT = "d3de90f02e7f1c7dbc24b04d52fe1b8ef438effe"
AMPHION_URL = "https://github.com/open-mmlab/Amphion/raw/{commit}/{path}"


class PinnedFilesUnavailable(RuntimeError):
    """A pinned file is missing and cannot be fetched, or its download does not match the pin.
    The message names files and the source, never a folder of the server."""


@dataclass(frozen=True)
class PinnedFile:
    upstream: str
    """Path inside the upstream repository."""
    sha256: str
    size: int


@dataclass(frozen=True)
class PinnedSource:
    name: str
    """Cache sub-folder, and how messages name these files."""
    files: Mapping[str, PinnedFile]
    """Folder-relative name -> where it comes from."""
    commit: str = AMPHION_COMMIT
    url_template: str = AMPHION_URL
    repository: str = "open-mmlab/Amphion"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.repository}@{self.commit[:10]})"

    def cache_folder(self) -> Path:
        root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "amphion"
        return Path(root).expanduser() / self.name / self.commit[:10]

    def missing(self, folder: Path, verify: bool = False) -> list[str]:
        """Names absent from ``folder`` (wrong size, or wrong hash when ``verify``)."""
        out = []
        for name, pin in self.files.items():
            path = folder / name
            if not path.is_file() or path.stat().st_size != pin.size or (verify and sha256_of(path) != pin.sha256):
                out.append(name)
        return out

    def missing_bytes(self, folder: Path | None = None) -> int:
        """What :meth:`download` would fetch into ``folder`` (default: the cache folder), in bytes."""
        folder = folder or self.cache_folder()
        return sum(self.files[name].size for name in self.missing(folder))

    def download(self, folder: Path | None = None, *, progress: bool = True,
                 on_bytes: Callable[[int], None] | None = None) -> Path:
        """Fetch every missing file into ``folder`` (default: the cache folder); return the folder.
        ``progress`` prints a line per file; ``on_bytes`` is told of every chunk received."""
        folder = folder or self.cache_folder()
        todo = self.missing(folder)
        for i, name in enumerate(todo, 1):
            pin = self.files[name]
            if progress:
                print(f"  [{i}/{len(todo)}] {name} ({pin.size / 1e6:.1f} MB)", flush=True)
            _fetch(self.url_template.format(commit=self.commit, path=pin.upstream), folder / name, pin, on_bytes)
        return folder


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, target: Path, pin: PinnedFile, on_bytes: Callable[[int], None] | None = None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    tmp.write(block)
                    if on_bytes is not None:
                        on_bytes(len(block))
            tmp.close()
            if sha256_of(Path(tmp.name)) != pin.sha256:
                raise PinnedFilesUnavailable(f"{target.name}: the downloaded file does not match the pinned SHA-256")
            os.replace(tmp.name, target)
        except PinnedFilesUnavailable:
            os.unlink(tmp.name)
            raise
        except OSError as exc:
            os.unlink(tmp.name)
            raise PinnedFilesUnavailable(f"{target.name}: download failed ({type(exc).__name__})") from None
