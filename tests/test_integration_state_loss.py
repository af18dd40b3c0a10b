"""Losing the shared-state actor: it is replaced and the application keeps serving, progress
included. Its own file so that it runs after the other integration tests (pytest orders files by
name), which rely on the actor's counts."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.test_integration import _collect, post, wav_bytes

pytestmark = pytest.mark.integration


def test_lost_state_actor_is_replaced_and_serving_continues(served):
    import ray

    from serve_app.state import STATE_ACTOR_NAME, STATE_NAMESPACE

    # A request first: the actor is made again by the ingress's next call whenever it was lost (Ray's
    # memory monitor may have killed it on a crowded machine); this test takes a live one away.
    assert post(served, "/api/vocoder/hifigan", files={"audio": ("a.wav", wav_bytes(0.3))}).status_code == 200
    ray.kill(ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE), no_restart=True)
    codes = [post(served, "/api/vocoder/hifigan", files={"audio": ("a.wav", wav_bytes(0.3))}).status_code
             for _ in range(3)]  # both ingress replicas notice and reconnect
    assert codes == [200, 200, 200]
    assert ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE) is not None
    # model replicas notice on their next publish; after that progress flows again
    key = served.fresh_key()
    for attempt in range(3):
        task_id = f"it-after-loss-{attempt}-{time.time_ns()}"
        r = post(served, "/api/vocoder/generic", key=key, headers={"X-Task-ID": task_id},
                 data={"vocoder_name": "nsf_hifigan"}, files={"audio": ("a.wav", wav_bytes(0.3))})
        assert r.status_code == 200
    events, _ = asyncio.run(_collect(served, task_id, key))
    assert events[-1]["status"] == "completed"
