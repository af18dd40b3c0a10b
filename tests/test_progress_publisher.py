"""ActorPublisher (deployments/progress.py): a model replica's progress events survive the loss of the
shared state actor, in order, and never hold up the caller. Fake actors stand in for Ray's: the
publisher's contract is about what it does when a publish fails, not about Ray itself."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from ray.exceptions import RayActorError

from deployments.progress import ActorPublisher


class FakeActor:
    """Records what it received; once ``dead``, every publish fails as a dead Ray actor's does."""

    def __init__(self, name: str):
        self.name = name
        self.received: list[int] = []
        self.dead = False
        outer = self

        class _Method:
            def remote(self, event):
                future = Future()
                if outer.dead:
                    future.set_exception(RayActorError())
                else:
                    outer.received.append(event["n"])
                    future.set_result(None)
                return _Ref(future)

        self.publish = _Method()


class _Ref:
    def __init__(self, future: Future):
        self._future = future

    def future(self) -> Future:
        return self._future


class Publisher(ActorPublisher):
    """Confirms a batch the way the fake actor allows (Ray's ``ray.get`` needs real object refs)."""

    @staticmethod
    def _send_confirmed(actor, events):
        for event in events:
            exc = actor.publish.remote(event).future().exception()
            if exc is not None:
                raise exc


def event(n: int) -> dict:
    return {"n": n, "timestamp": time.time() + n * 1e-6}


def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_events_after_the_actor_dies_reach_its_replacement_in_order():
    first, second = FakeActor("first"), FakeActor("second")
    current = {"actor": first}
    # The replacement only appears a little later, as when the ingress recreates it on its next call.
    gate = threading.Event()
    publisher = Publisher(connect=lambda: current["actor"] if gate.is_set() or current["actor"] is first else None)

    publisher.publish(event(1))
    assert first.received == [1]

    first.dead = True
    current["actor"] = second
    publisher.publish(event(2))          # fails on the dead actor: queued for the worker thread
    publisher.publish(event(3))          # published while re-sending: must queue behind 2
    publisher.publish(event(4))
    assert second.received == []
    gate.set()
    wait_until(lambda: second.received == [2, 3, 4])

    wait_until(lambda: not publisher._retrying)
    publisher.publish(event(5))          # the queue is empty again: straight to the new actor
    assert second.received == [2, 3, 4, 5]
    assert first.received == [1]


def test_publish_never_blocks_while_no_actor_exists_and_drops_after_the_retry_window():
    publisher = Publisher(connect=lambda: None, retry_for_s=0.3)
    start = time.monotonic()
    for n in range(50):
        publisher.publish(event(n))
    assert time.monotonic() - start < 0.5          # inference is never held up by progress
    wait_until(lambda: not publisher._retrying)
    assert publisher._pending == []                 # dropped (with a warning), not kept forever

    late = FakeActor("late")
    publisher._connect = lambda: late
    publisher.publish(event(99))                    # a later event still goes out
    assert late.received == [99]
