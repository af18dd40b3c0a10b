"""The application builder named by config/serve*.yaml: `import_path: serve_app.application:build_app`.

`args` in the config file come here. The builder is a loop over the families declared in
``deployments/`` (``deployments.topology``): shared parts are bound once, each family's parts are
bound (or, with the family in ``inline_parts``, handed to its entries as recipes to build in their
own replica), each entry gets its parts' handles, and the ingress gets the entries'.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import ConfigDict, Field, field_validator

from deployments import topology
from deployments.runtime import DTYPES, ONEDNN_PRIMITIVE_CACHE
from serve_app.ingress import AmphionIngress
from serve_app.settings import Settings


# Environment every replica of this application gets (mirrors `runtime_env` in config/serve*.yaml,
# for applications started from Python: tests and benchmarks).
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
               "ONEDNN_PRIMITIVE_CACHE_CAPACITY": ONEDNN_PRIMITIVE_CACHE}
# The ingress handles uploads in 64 KB chunks and decoded arrays of tens of MB, briefly: with
# glibc's default (dynamic) thresholds that memory stays in the heap after use and the replica's
# RSS only grows; these make large blocks come from mmap and go back to the OS when freed.
# Ingress only: model replicas reuse big tensors, where mmap per allocation would cost page faults.
INGRESS_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


class AppArgs(Settings):
    """Everything `args:` may hold: the ingress settings plus how model deployments load."""

    model_config = ConfigDict(extra="forbid")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal[DTYPES] = Field(  # type: ignore[valid-type]
        "auto", description="weights of the generative models and encoders: auto = float16 on GPU, float32 on "
                            "CPU (codecs and vocoders always run in float32)")
    torch_threads: Optional[int] = Field(None, ge=1, description="intra-op CPU threads per model replica")
    cache_dir: Optional[str] = Field(None, description="Hugging Face cache folder for pretrained weights")
    inline_parts: list[str] = Field(
        default_factory=list,
        description="families whose parts run inside their entry's replica instead of as deployments of their "
                    "own: one process per family (the local profile); off, parts scale on their own (production)")

    models: Optional[list[str]] = Field(
        None, description="the model families this application deploys (family keys: deployments/<family>.py "
                          "FAMILY, e.g. [vocoders, codecs]); absent: all. Routes of the others answer 503 and "
                          "/api/health shows them not_deployed")

    @field_validator("inline_parts")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        known = {f.key for f in topology.families() if f.parts}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown families {unknown}; families with parts: {sorted(known)}")
        return value

    @field_validator("models")
    @classmethod
    def _deployable_families(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        if value is None:
            return None
        known = {f.key for f in topology.families() if f.entries}
        unknown = sorted(set(value) - known)
        if unknown:
            # a family without entries (asr: Whisper) has no routes: it comes with the families using it
            raise ValueError(f"unknown model families {unknown}; families: {sorted(known)}")
        if not value:
            raise ValueError("models: name at least one family (or leave it out for all)")
        return value

    def loading(self) -> dict:
        """The constructor arguments every model service takes."""
        return dict(weights=self.weights, device=self.device, torch_threads=self.torch_threads,
                    cache_dir=self.cache_dir, dtype=self.dtype)


def build_app(args: dict | None = None):
    return compose(AppArgs(**(args or {})))


def compose(parsed: AppArgs, ingress_replicas: int | None = None, options: dict[str, dict] | None = None):
    """Bind the families ``args.models`` names (all by default; see :func:`deployed_entries`) and the
    ingress. Replica counts and batching normally come from the config file; tests and benchmarks
    pass them here (``options``: deployment name -> Serve options, e.g. a vocoder's ``user_config``)."""
    options = options or {}
    loading = parsed.loading()
    parts = topology.all_parts()
    entries = {entry.name: entry for family in topology.families() for entry in family.entries}
    inline = set(parsed.inline_parts)
    bound: dict = {}

    def bind(name: str):
        """A part or an entry, bound once (an entry may use another family's entry: VALL-E the codec)."""
        if name not in bound:
            if name in parts:
                part = parts[name]
                bound[name] = part.deployment.options(name=name).bind(**part.bind_args, **loading)
            else:
                entry = entries[name]
                components = {use: topology.PartRecipe.of(parts[use]) if topology.runs_inline(use, inline)
                              else bind(use) for use in entry.uses}
                args = dict(entry.args)
                if entry.uses:
                    args["components"] = components
                deployment = entry.deployment.options(name=entry.name, **options.get(entry.name, {}))
                bound[name] = deployment.bind(**args, **loading)
        return bound[name]

    handles = {name: bind(name) for name in deployed_entries(parsed)}
    settings = parsed.model_dump(include=set(Settings.model_fields) - {"api_keys"})
    ingress = {"ray_actor_options": {"runtime_env": {"env_vars": INGRESS_ENV}}}
    if ingress_replicas is not None:
        ingress["num_replicas"] = ingress_replicas
    return AmphionIngress.options(**ingress).bind(handles, settings)


def compose_local(parsed: AppArgs, store=None) -> dict:
    """The same composition as :func:`compose` in this process, without Ray: entry name -> service
    object, for a :class:`~serve_app.backend.LocalBackend` (the plain-FastAPI baseline of
    ``scripts/bench_overhead.py``). Every part is built once and shared by the entries using it,
    each called through a :class:`~deployments.topology.LocalHandle`; ``store`` gets progress."""
    loading = parsed.loading()
    parts = topology.all_parts()
    built: dict = {}

    def build(name: str):
        if name not in built:
            if name in parts:
                part = parts[name]
                built[name] = part.deployment.func_or_class(**part.bind_args, **loading, store=store)
            else:
                entry = topology.entry_named(name)
                args = dict(entry.args)
                if entry.uses:
                    args["components"] = {use: topology.LocalHandle(build(use)) for use in entry.uses}
                built[name] = entry.deployment.func_or_class(**args, **loading, store=store)
        return built[name]

    return {name: build(name) for name in deployed_entries(parsed)}


def deployed_entries(parsed: AppArgs) -> list[str]:
    """The entries this application deploys: those of the families in ``args.models`` (all when
    absent), plus every entry one of them uses (DualCodec-VALL-E calls the codecs family's DualCodec,
    which is then deployed, and serves its own routes, even with ``codecs`` left out). Parts (shared
    ones included) follow from the entries' ``uses``: a part is bound when an entry using it is."""
    chosen = None if parsed.models is None else set(parsed.models)
    entries = {entry.name: entry for family in topology.families() for entry in family.entries
               if chosen is None or family.key in chosen}
    pending = list(entries.values())
    while pending:
        for use in pending.pop().uses:
            entry = topology.entry_named(use)
            if entry is not None and entry.name not in entries:
                entries[entry.name] = entry
                pending.append(entry)
    return list(entries)


def deployment_names(parsed: AppArgs) -> set[str]:
    """The deployments :func:`compose` creates for these args, the ingress included."""
    inline = set(parsed.inline_parts)
    names = {AmphionIngress.name}
    for name in deployed_entries(parsed):
        names.add(name)
        names.update(n for n in topology.entry_named(name).uses if not topology.runs_inline(n, inline))
    return names
