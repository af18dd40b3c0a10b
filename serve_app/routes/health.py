"""GET /api/health: liveness plus, per model, whether its deployments run and which weights they serve."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from deployments import topology
from models import registry
from serve_app.settings import API_VERSION

router = APIRouter(prefix="/api", tags=["Utility"])


@router.get("/health", summary="Service and per-model status (no API key needed)",
            responses={200: {"description": "`healthy`, or `degraded` when some models are unavailable"}})
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
            if info.get("weights") == "tiny":
                warnings.append(f"{model.display_name} serves tiny random weights: {info.get('detail', '')}".strip())
        models[model.key] = entry
    ready = all(m["status"] == "ready" for m in models.values())
    return {"status": "healthy" if ready else "degraded", "version": API_VERSION, "models": models,
            "warnings": warnings}
