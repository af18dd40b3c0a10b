#!/usr/bin/env python
"""Download the official weights of the served models ahead of time.

    python scripts/download_weights.py [--cache-dir DIR] MODEL [MODEL ...]
    python scripts/download_weights.py [--cache-dir DIR] --all
    python scripts/download_weights.py [--cache-dir DIR] --list

Files go to the Hugging Face cache: ``--cache-dir``, else ``$AMPHION_HF_CACHE``, else the Hugging Face
default (``$HF_HUB_CACHE`` / ``$HF_HOME/hub``). The server then finds them with
``AMPHION_WEIGHTS=pretrained`` or ``auto``, without network access. Models that have no official
release (``repo_id`` None) must be provided as a local folder through their environment variable.

Exit codes: 0 ok, 1 a download failed (or the model table cannot be read), 2 unknown model name.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:  # run as a file: make the `models` package importable
    sys.path.insert(0, str(_REPO_ROOT))

from models import weights  # noqa: E402  (after the sys.path fix above)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNKNOWN_MODEL = 2


class _TableError(RuntimeError):
    pass


def official_table() -> dict[str, weights.HubFiles]:
    """Model name -> HubFiles, from ``models.registry.official_weights()`` (looked up at call time)."""
    try:
        registry = importlib.import_module("models.registry")
        table = registry.official_weights()
    except Exception as exc:  # noqa: BLE001 - reported as one line, exit 1
        raise _TableError(f"cannot read the model table (models.registry.official_weights): "
                          f"{type(exc).__name__}: {exc}") from exc
    return dict(table)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="download_weights.py",
        description="Download the official Amphion weights into the Hugging Face cache, ahead of serving.",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help="model names (see --list)")
    p.add_argument("--all", action="store_true", help="every model that has official weights")
    p.add_argument("--list", action="store_true", help="list the models, their repos and whether they are present")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="Hugging Face cache folder (default: $AMPHION_HF_CACHE, else the Hugging Face default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _status(files: weights.HubFiles, cache_dir: str | None) -> str:
    try:
        weights.find_local(files, cache_dir=cache_dir)
    except weights.WeightsUnavailable:
        return "missing"
    except Exception:  # noqa: BLE001 - a listing never fails on one bad entry
        return "unknown"
    return "present"


def _list(table: dict[str, weights.HubFiles], cache_dir: str | None) -> int:
    print(f"cache: {weights.default_cache_dir(cache_dir)}")
    width = max((len(n) for n in table), default=0)
    for name in sorted(table):
        files = table[name]
        if files.repo_id:
            source = files.repo_id + (f"@{files.revision}" if files.revision else "")
        elif files.pinned is not None:
            source = files.pinned.label
        else:
            source = "(no official release: local folder" + (
                f" via ${files.local_dir_env})" if files.local_dir_env else ")")
        print(f"{name:<{width}}  {_status(files, cache_dir):<7}  {source}  [{', '.join(files.patterns)}]")
    return EXIT_OK


def _download_one(name: str, files: weights.HubFiles, cache_dir: str | None, progress: bool) -> bool:
    if not files.repo_id and files.pinned is None:
        env = files.local_dir_env
        if env:
            state = _status(files, cache_dir)
            if state == "present":
                print(f"[{name}] no official release; local folder given by ${env} is complete")
            else:
                print(f"[{name}] no official release: provide it as a local folder via ${env} "
                      f"(holding {', '.join(files.patterns)})")
        else:
            print(f"[{name}] no official release and no local folder variable: nothing to download")
        return True

    if files.repo_id:
        dest = weights.default_cache_dir(cache_dir) / ("models--" + files.repo_id.replace("/", "--"))
    else:
        dest = files.pinned.cache_folder()
    print(f"[{name}] {files.label} -> {dest}", flush=True)
    try:
        root = weights.download(files, cache_dir=cache_dir, progress=progress)
    except weights.WeightsUnavailable as exc:
        print(f"[{name}] error: {exc}", file=sys.stderr, flush=True)
        return False
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        print(f"[{name}] error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return False
    count = sum(len(weights.ResolvedWeights("pretrained", root, "").files(p)) for p in files.patterns)
    print(f"[{name}] ok: {count} file(s) in {root}", flush=True)
    return True


def _download_g2p_data(progress: bool) -> bool:
    """MaskGCT's text front end reads data files from Amphion's repository (not the hub)."""
    from models.text.data import default_cache, download_g2p_data
    from models.text.g2p import G2PDataUnavailable

    print(f"[maskgct G2P data] Amphion repository (pinned commit) -> {default_cache()}", flush=True)
    try:
        download_g2p_data(progress=progress)
    except G2PDataUnavailable as exc:
        print(f"[maskgct G2P data] error: {exc}", file=sys.stderr, flush=True)
        return False
    print("[maskgct G2P data] ok", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not (args.list or args.all or args.models):
        _parser().print_usage(sys.stderr)
        print("download_weights.py: error: name at least one MODEL, or --all, or --list", file=sys.stderr)
        return EXIT_UNKNOWN_MODEL

    try:
        table = official_table()
    except _TableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    if args.list:
        return _list(table, args.cache_dir)

    # A family name ("maskgct") stands for all of its components ("maskgct/t2s", ...).
    requested = [n for m in args.models for n in (sorted(k for k in table if k.startswith(m + "/")) or [m])]
    unknown = [m for m in requested if m not in table]
    if unknown:
        print(f"error: unknown model(s): {', '.join(unknown)}; known: {', '.join(sorted(table)) or '(none)'}",
              file=sys.stderr)
        return EXIT_UNKNOWN_MODEL

    chosen = sorted(table) if args.all else list(dict.fromkeys(requested))
    failed = [name for name in chosen
              if not _download_one(name, table[name], args.cache_dir, progress=not args.quiet)]
    needs_g2p = any(name.startswith(("maskgct/", "metis/")) for name in chosen)
    if needs_g2p and not _download_g2p_data(progress=not args.quiet):
        failed.append("maskgct G2P data")
    if any(name.startswith("audioldm/") for name in chosen) and not _download_audioldm(args.cache_dir, not args.quiet):
        failed.append("AudioLDM (diffusers)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _download_audioldm(cache_dir, progress: bool) -> bool:
    """The default diffusers AudioLDM repo (each component as .safetensors, else .bin)."""
    from models.audioldm.diffusers_pipeline import DIFFUSERS_DEFAULT_REPO, download_diffusers

    try:
        print(f"{DIFFUSERS_DEFAULT_REPO}: {download_diffusers(DIFFUSERS_DEFAULT_REPO, cache_dir=cache_dir, progress=progress)}")
        return True
    except weights.WeightsUnavailable as exc:
        print(f"{DIFFUSERS_DEFAULT_REPO}: {exc}", file=sys.stderr)
        return False


if __name__ == "__main__":
    sys.exit(main())
