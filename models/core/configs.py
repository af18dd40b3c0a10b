"""Reading configuration files: JSON, leniently (Amphion writes its configs with json5), or YAML."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "loads_lenient", "read_config", "read_json"]


class ConfigError(ValueError):
    """A configuration that cannot be read, or does not describe the requested model."""


_STRING_OR_COMMENT = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def loads_lenient(text: str) -> Any:
    """``json.loads`` that also accepts ``//`` / ``/* */`` comments and trailing commas."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    # Drop comments but keep string literals intact (a URL inside a string contains "//").
    without_comments = _STRING_OR_COMMENT.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", text)
    # Trailing commas: only outside strings, so apply the substitution to the non-string parts.
    pieces, last = [], 0
    for m in re.finditer(r'"(?:\\.|[^"\\])*"', without_comments):
        pieces.append(_TRAILING_COMMA.sub(r"\1", without_comments[last : m.start()]))
        pieces.append(m.group(0))
        last = m.end()
    pieces.append(_TRAILING_COMMA.sub(r"\1", without_comments[last:]))
    return json.loads("".join(pieces))


def read_json(path: str | Path) -> dict:
    """A JSON (or json5-style) file holding one object; ConfigError for anything else at the top."""
    data = loads_lenient(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level")
    return data


def read_config(path: str | Path) -> dict:
    """A config file as a dict: JSON / json5, or YAML for ``.yaml`` / ``.yml``."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return data
    return read_json(path)
