"""GET /api/health: liveness plus, per model, whether its deployments run and which weights they serve."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from deployments import topology
from models import registry
from serve_app.backend import NOT_DEPLOYED
from serve_app.settings import API_VERSION

router = APIRouter(prefix="/api", tags=["Utility"])


@router.get("/health", summary="Service and per-model status (no API key needed)",
            responses={200: {"description": "`healthy`, or `degraded` when some deployed models are not ready "
                                           "(per model: `ready`, `downloading` with `progress`, `unavailable`, "
                                           "`not_running`, `not_deployed`)"}})
async def health(request: Request):
    backend = request.app.state.backend
    models: dict[str, dict] = {}
    warnings: list[str] = []
    entries = {key: topology.entry_for(key) for key in registry.MODELS}
    built = [key for key, name in entries.items() if name is not None]
    infos = dict(zip(built, await asyncio.gather(*(backend.info(entries[key], key) for key in built))))
    for model in registry.MODELS.values():
        entry = {"name": model.display_name, "task": model.task, "routes": list(model.routes)}
        if model.key not in infos:
            entry.update(status="not_implemented", running=False, weights=None,
                         detail=f"{model.display_name} is not part of this release yet")
        else:
            info = infos[model.key]
            entry.update(status=info["status"], running=info["running"], weights=info.get("weights"),
                         detail=info.get("detail", ""))
            if "progress" in info:  # a start-up download of official weights (weights: auto)
                entry["progress"] = info["progress"]
            if info.get("weights") == "tiny":
                warnings.append(f"{model.display_name} serves tiny random weights: {info.get('detail', '')}".strip())
        models[model.key] = entry
    # A family left out on purpose (args.models) does not make the application degraded.
    ready = all(m["status"] in ("ready", NOT_DEPLOYED) for m in models.values())
    return {"status": "healthy" if ready else "degraded", "version": API_VERSION, "models": models,
            "warnings": warnings}
