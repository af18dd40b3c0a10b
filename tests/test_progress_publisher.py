"""ActorPublisher (deployments/progress.py): a replica's progress events reach the shared state
actor in order and in batches, survive the loss of the actor, and never hold up the caller. Fake
actors stand in for Ray's: the publisher's contract is about batching, order and what it does when
a send fails, not about Ray itself."""

from __future__ import annotations

import asyncio
import threading
import time

from ray.exceptions import RayActorError

from deployments import progress
from deployments.progress import ActorPublisher


class FakeActor:
    """Records the batches it received; once ``dead``, every send fails as a dead Ray actor's does."""

    def __init__(self, name: str, delay_s: float = 0.0):
        self.name = name
        self.batches: list[list[int]] = []
        self.dead = False
        self.delay_s = delay_s

    @property
    def received(self) -> list[int]:
        return [n for batch in self.batches for n in batch]


class Publisher(ActorPublisher):
    """Sends to a fake actor (Ray's ``ray.get`` needs real object refs)."""

    @staticmethod
    def _send(actor, events, sent):
        sent()
        time.sleep(actor.delay_s)
        if actor.dead:
            raise RayActorError()
        actor.batches.append([e["n"] for e in events])


def event(n: int, status: str = "running") -> dict:
    return {"n": n, "status": status, "timestamp": time.time() + n * 1e-6}


def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_steps_travel_in_batches_and_final_events_at_once():
    actor = FakeActor("a")
    publisher = Publisher(connect=lambda: actor, batch_window_s=0.2)
    for n in range(30):
        publisher.publish(event(n))
    publisher.publish(event(30, "completed"))     # a final event cuts the batch window short
    assert publisher.flush(timeout=2, confirmed=True)
    assert actor.received == list(range(31))
    assert len(actor.batches) <= 2, actor.batches  # 31 events, not 31 calls

    started = time.monotonic()
    publisher.publish(event(31, "queued"))
    wait_until(lambda: actor.received[-1:] == [31])
    assert time.monotonic() - started < 0.15       # not held for the 0.2 s window


def test_flush_waits_for_queued_steps_and_send_now_skips_the_window():
    actor = FakeActor("a")
    publisher = Publisher(connect=lambda: actor, batch_window_s=5.0)
    publisher.publish(event(1))
    publisher.publish(event(2))
    started = time.monotonic()
    assert publisher.flush(timeout=2)               # sent now, not after the 5 s window
    assert time.monotonic() - started < 1.0
    wait_until(lambda: actor.received == [1, 2])

    publisher.publish(event(3))
    progress.send_now()                             # every publisher of the process
    wait_until(lambda: actor.received == [1, 2, 3], timeout_s=1.0)


def test_drain_returns_at_once_when_nothing_waits():
    actor = FakeActor("a")
    publisher = Publisher(connect=lambda: actor, batch_window_s=5.0)
    assert publisher.idle
    started = time.monotonic()
    asyncio.run(progress.drain())
    assert time.monotonic() - started < 0.05
    publisher.publish(event(1))
    asyncio.run(progress.drain())
    wait_until(lambda: actor.received == [1], timeout_s=1.0)


def test_events_after_the_actor_dies_reach_its_replacement_in_order():
    first, second = FakeActor("first"), FakeActor("second")
    current = {"actor": first}
    # The replacement only appears a little later, as when the ingress recreates it on its next call.
    gate = threading.Event()
    publisher = Publisher(connect=lambda: current["actor"] if gate.is_set() or current["actor"] is first else None,
                          batch_window_s=0.01)

    publisher.publish(event(1, "queued"))
    wait_until(lambda: first.received == [1])

    first.dead = True
    current["actor"] = second
    publisher.publish(event(2))          # fails on the dead actor: stays queued
    publisher.publish(event(3))
    time.sleep(0.1)
    publisher.publish(event(4))          # published while re-sending: must queue behind 2 and 3
    assert second.received == []
    gate.set()
    wait_until(lambda: second.received == [2, 3, 4])
    assert publisher.flush(timeout=2, confirmed=True)

    publisher.publish(event(5, "completed"))
    wait_until(lambda: second.received == [2, 3, 4, 5])
    assert first.received == [1]


def test_publish_never_blocks_while_no_actor_exists_and_drops_after_the_retry_window():
    publisher = Publisher(connect=lambda: None, retry_for_s=0.3, batch_window_s=0.01)
    start = time.monotonic()
    for n in range(50):
        publisher.publish(event(n))
    assert time.monotonic() - start < 0.5          # inference is never held up by progress
    assert publisher.flush(timeout=5, confirmed=True)   # settles: dropped (with a warning), not kept forever
    assert publisher._pending == []

    late = FakeActor("late")
    publisher._connect = lambda: late
    publisher.publish(event(99, "completed"))       # a later event still goes out
    wait_until(lambda: late.received == [99])


def test_a_slow_actor_does_not_slow_the_publisher():
    actor = FakeActor("slow", delay_s=0.2)
    publisher = Publisher(connect=lambda: actor, batch_window_s=0.01)
    start = time.monotonic()
    for n in range(100):
        publisher.publish(event(n))
    assert time.monotonic() - start < 0.1
    assert publisher.flush(timeout=5, confirmed=True)
    assert actor.received == list(range(100)) and len(actor.batches) < 10


def test_a_lone_step_goes_at_once_and_the_burst_after_it_waits_for_the_window():
    actor = FakeActor("a")
    publisher = Publisher(connect=lambda: actor, batch_window_s=0.3)
    publisher.publish(event(1))                    # the last send is long past: no delay
    wait_until(lambda: actor.received == [1], timeout_s=0.1)
    assert publisher.idle                          # a replica answering now does not wait
    for n in range(2, 10):
        publisher.publish(event(n))
    time.sleep(0.1)
    assert actor.received == [1]                   # within the window: held for company
    wait_until(lambda: actor.received == list(range(1, 10)), timeout_s=1.0)
    assert len(actor.batches) == 2
