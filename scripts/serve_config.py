"""A Serve config for a subset of the model families: ``args.models`` set, and only the deployments
the application then creates listed (Serve refuses a config naming a deployment the application
does not have).

    scripts/serve_config.py config/serve.yaml --models vocoders,codecs > my.yaml   # then: serve deploy my.yaml
    AMPHION_MODELS=vocoders,codecs scripts/serve_config.py config/serve.local.yaml --run   # what `make serve` runs

``--models`` (default: ``$AMPHION_MODELS``; neither: the config's own ``args.models``, absent = all)
names family keys (``deployments/<family>.py``). ``--run`` starts ``serve run`` on the result.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS_ENV = "AMPHION_MODELS"
BUILDER = "serve_app.application:build_app"


def parse_models(text: str | None) -> list[str] | None:
    """``"vocoders, codecs"`` -> ``["vocoders", "codecs"]``; empty or None -> None (keep the config's)."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    return names or None


def for_models(config: dict, models: list[str] | None) -> dict:
    """``config`` with ``args.models`` set to ``models`` (None: as it is) in our application, and its
    deployment list cut to the deployments the builder creates for those args."""
    from serve_app.application import AppArgs, deployment_names

    out = copy.deepcopy(config)
    for app in out.get("applications", []):
        if app.get("import_path") != BUILDER:
            continue
        args = app.setdefault("args", {})
        if models is not None:
            args["models"] = list(models)
        names = deployment_names(AppArgs(**args))  # validates the names: unknown families are refused
        app["deployments"] = [d for d in app.get("deployments", []) if d["name"] in names]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="a Serve config file (config/serve.yaml, config/serve.local.yaml)")
    parser.add_argument("--models", default=os.environ.get(MODELS_ENV),
                        help=f"comma-separated family keys (default: ${MODELS_ENV}, else the config's args.models)")
    parser.add_argument("-o", "--output", type=Path, help="write the config here (default: standard output)")
    parser.add_argument("--run", action="store_true", help="start `serve run` on it")
    args = parser.parse_args(argv)

    models = parse_models(args.models)
    config = yaml.safe_load(args.config.read_text())
    try:
        written = for_models(config, models)
    except ValueError as exc:  # pydantic's validation error names the known families
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    text = yaml.safe_dump(written, sort_keys=False)
    if not args.run:
        if args.output:
            args.output.write_text(text)
        else:
            sys.stdout.write(text)
        return 0

    path = args.config
    if written != config:  # a subset: serve the rewritten copy
        path = args.output or Path(tempfile.gettempdir()) / f"amphion-serve-{'-'.join(models or ['config'])}.yaml"
        path.write_text(text)
        print(f"serving the families {', '.join(models or [])} ({len(written['applications'][0]['deployments'])} "
              f"deployments): {path}", file=sys.stderr)
    serve = Path(sys.executable).with_name("serve")
    os.execv(str(serve), [str(serve), "run", str(path)])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
