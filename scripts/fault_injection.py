"""Kill parts of a running application through Ray's API, as a crash would: model replicas, ingress
replicas (by their named actors) and the shared state actor. Used by ``tests/test_faults.py`` and by
``scripts/load_test.py --faults``; needs a driver connected to the application's Ray cluster.

A kill is ``ray.kill(..., no_restart=True)``: the process dies at once, with whatever it was doing.
Serve's controller notices on its next health check and starts a replacement.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

APP = "amphion"
INGRESS = "AmphionIngress"
STATE = "state actor"


def replica_actor_names(deployment: str, app: str = APP) -> list[str]:
    """The named actors of ``deployment``'s live replicas (``SERVE_REPLICA::<app>#<deployment>#<id>``)."""
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == "serve" and a["name"].split("::", 1)[-1].startswith(f"{app}#{deployment}#"))


def kill_replica(name: str) -> None:
    import ray

    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)


def kill_one_replica(deployment: str, app: str = APP) -> str:
    names = replica_actor_names(deployment, app)
    assert names, f"no replica of {deployment} found"
    kill_replica(names[0])
    return names[0]


def kill_state_actor() -> str:
    import ray

    from serve_app.state import STATE_ACTOR_NAME, STATE_NAMESPACE

    ray.kill(ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE), no_restart=True)
    return STATE_ACTOR_NAME


def wait_healthy(timeout_s: float = 120.0, app_name: str = APP) -> float:
    """Until Serve reports the application and every deployment HEALTHY (the replacements up); the wait."""
    from ray import serve

    start = time.monotonic()
    while True:
        app = serve.status().applications.get(app_name)
        bad = {} if app is None else {name: d.status for name, d in app.deployments.items()
                                      if str(getattr(d.status, "value", d.status)) != "HEALTHY"}
        if app is not None and str(getattr(app.status, "value", app.status)) == "RUNNING" and not bad:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout_s, f"not healthy after {timeout_s:.0f} s: {bad}"
        time.sleep(1)


@dataclass
class FaultSchedule:
    """Kills ``targets`` (deployment names, or :data:`STATE`) one after another, evenly spread over
    ``duration_s`` (the first at 1/(n+1) of it), from a thread; ``log`` says what died when."""

    targets: list[str]
    duration_s: float
    log: list[dict] = field(default_factory=list)

    def start(self) -> "FaultSchedule":
        self._thread = threading.Thread(target=self._run, name="fault-schedule", daemon=True)
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        step = self.duration_s / (len(self.targets) + 1)
        for i, target in enumerate(self.targets, start=1):
            time.sleep(max(0.0, self._t0 + i * step - time.monotonic()))
            entry = {"at_s": round(time.monotonic() - self._t0, 1), "target": target}
            try:
                entry["killed"] = kill_state_actor() if target == STATE else kill_one_replica(target)
            except Exception as exc:   # reported, not raised: the load run goes on
                entry["error"] = f"{type(exc).__name__}: {exc}"[:200]
            self.log.append(entry)

    def join(self) -> list[dict]:
        self._thread.join()
        return self.log
