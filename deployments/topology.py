"""How each model family is deployed, declared as data, and read by the application builder.

Every module of this package that defines ``FAMILY`` (a :class:`Family`) is a family. A family has

* ``entries``: the deployments its routes call (``models``: the registry keys each one serves);
* ``parts``: the deployments an entry composes through handles, each with the stages it serves.
  With ``inline_parts`` on for the family (config ``args.inline_parts``), every entry that uses one
  of its parts builds it in its own replica instead (one process, less memory: the local profile);
  off, each part is its own deployment that scales on its own (production), called by every entry
  that uses it (Metis calls MaskGCT's);
* ``shared`` parts (Whisper, w2v-bert): one deployment for the whole application, never inlined.

An entry receives its parts and shared deployments as ``components`` (deployment name ->
handle, or a :class:`PartRecipe` it builds in process). See README "Adding a model family".
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping


@dataclass(frozen=True)
class Part:
    """A deployment an entry composes: ``deployment`` (a Serve deployment of a plain service
    class) named ``name``, bound with ``args``."""

    name: str
    deployment: Any
    args: Mapping[str, Any] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    #: Parts used by several families (w2v-bert) stay their own deployment even when inlining.
    shared: bool = False

    @property
    def bind_args(self) -> dict:
        """Constructor arguments: ``args``, plus ``stages`` (what callers may run) when declared."""
        return {**self.args, "stages": self.stages} if self.stages else dict(self.args)


@dataclass(frozen=True)
class Entry:
    """A deployment that routes call: ``deployment`` named ``name``, bound with ``args``."""

    name: str
    deployment: Any
    models: tuple[str, ...] = ()
    args: Mapping[str, Any] = field(default_factory=dict)
    #: Deployment names of the parts (this family's or shared ones) it calls.
    uses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    key: str
    entries: tuple[Entry, ...]
    parts: tuple[Part, ...] = ()

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)


@dataclass(frozen=True)
class PartRecipe:
    """A part to build inside the entry's replica (inline): its service class and arguments."""

    service: type
    args: Mapping[str, Any]

    @classmethod
    def of(cls, part: Part) -> "PartRecipe":
        return cls(part.deployment.func_or_class, part.bind_args)

    def build(self, loading: Mapping[str, Any], store=None):
        return LocalHandle(self.service(**self.args, **loading, store=store))


class LocalHandle:
    """A service in this process that answers like a DeploymentHandle: ``h.method.remote(*args)``."""

    def __init__(self, service):
        self.service = service

    def __getattr__(self, method: str):
        fn = getattr(self.__dict__["service"], method)

        class _Method:
            @staticmethod
            async def remote(*args):
                return await fn(*args)

        return _Method


def runs_inline(part_name: str, inline_families) -> bool:
    """Whether an entry builds this part in its own replica: the family that declares the part is
    switched inline and the part is not shared. A part another family's entry also uses (MaskGCT's
    T2S, used by Metis) is then built in each of those entries' replicas: cheap with tiny weights,
    a second copy of the weights with official ones."""
    return any(family.key in inline_families and not p.shared
               for family in families() for p in family.parts if p.name == part_name)


def stage_owners(parts) -> dict[str, str]:
    """Stage name -> the deployment that serves it."""
    return {stage: p.name for p in parts for stage in p.stages}


@lru_cache(maxsize=1)
def families() -> tuple[Family, ...]:
    """Every family declared in this package (module order)."""
    import deployments

    found = []
    for info in sorted(pkgutil.iter_modules(deployments.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"deployments.{info.name}")
        if isinstance(getattr(module, "FAMILY", None), Family):
            found.append(module.FAMILY)
    return tuple(found)


def entry_for(model_key: str) -> str | None:
    """The deployment a model's routes call; None when the model is not built."""
    for family in families():
        for entry in family.entries:
            if model_key in entry.models:
                return entry.name
    return None


def entry_named(name: str) -> Entry | None:
    """The entry deployment called ``name``; None when ``name`` is not an entry (a part, say)."""
    return next((e for family in families() for e in family.entries if e.name == name), None)


def built_model_keys() -> tuple[str, ...]:
    return tuple(key for family in families() for entry in family.entries for key in entry.models)


def all_parts() -> dict[str, Part]:
    """Every part by deployment name (a shared part is declared once, by the family that owns it)."""
    return {p.name: p for family in families() for p in family.parts}
