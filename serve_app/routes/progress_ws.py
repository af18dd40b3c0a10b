"""WebSocket /ws/progress/{task_id}: the task's events as JSON, closing after the final one."""

from __future__ import annotations

import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from serve_app.auth import presented_key
from serve_app.progress import TASK_ID_RULE, valid_task_id
from serve_app.state import TERMINAL

router = APIRouter()

POLICY_VIOLATION = 1008
WAIT_SLICE_S = 15.0


@router.websocket("/ws/progress/{task_id}")
async def progress_socket(websocket: WebSocket, task_id: str):
    """Events `{task_id, status, stage, step, total_steps, progress, detail, timestamp}`.

    The API key comes from the X-API-Key header (or Authorization: Bearer) or, for browsers, the
    `api_key` query parameter.
    """
    app = websocket.app
    await websocket.accept()
    key = presented_key(websocket.headers) or websocket.query_params.get("api_key")
    if app.state.gate.keys.identify(key) is None:
        await websocket.close(code=POLICY_VIOLATION, reason="missing or invalid API key")
        return
    if not valid_task_id(task_id):
        await websocket.close(code=POLICY_VIOLATION, reason=f"task id must be {TASK_ID_RULE}")
        return

    store = app.state.store
    deadline = time.monotonic() + app.state.settings.task_ttl_s
    after = 0
    try:
        while True:
            events, after = await store.wait_events(task_id, after, WAIT_SLICE_S)
            for event in events:
                await websocket.send_json(event)
            if events and events[-1]["status"] in TERMINAL:
                await websocket.close(code=1000)
                return
            if time.monotonic() > deadline:
                await websocket.close(code=1000, reason="no events for this task id")
                return
    except WebSocketDisconnect:
        return
