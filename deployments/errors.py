"""Errors a model deployment raises on purpose, with details that are safe to show users.

Ray re-raises them in the ingress as instances of the same classes, which map them to HTTP codes.
Anything else a deployment raises is a bug and becomes a 500 with a request id.
"""


class ModelError(Exception):
    status_code = 500

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail

    def __reduce__(self):  # keep the detail when Ray pickles the error across processes
        return (type(self), (self.detail,))


class ModelUnavailable(ModelError):
    """The model is not deployed, not loaded, or has no weights (HTTP 503)."""

    status_code = 503


class ModelNotDeployed(ModelUnavailable):
    """The model's family is left out of this application (``args.models``): HTTP 503."""

    @classmethod
    def for_deployment(cls, deployment: str) -> "ModelNotDeployed":
        return cls(f"{deployment} is not deployed here (args.models)")


class ModelBusy(ModelUnavailable):
    """The deployment's queue is full (Serve's ``max_queued_requests``): HTTP 503 with Retry-After."""

    retry_after_s = 5

    def retry_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


def handle_call_failure(exc: BaseException, deployment: str, what: str) -> ModelUnavailable | None:
    """The 503 that a DeploymentHandle call's system failure becomes for the client, or None when
    ``exc`` is not one. ``what`` names the call in the detail.

    A full queue (the caller's router refuses at ``max_queued_requests``) is a 503 with Retry-After:
    a client queued for minutes behind an overloaded replica is worse off than one told to come back.
    A replica that died with the call on it (or is being replaced) is a 503 naming a retry: Serve
    starts a new one.
    """
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

    if isinstance(exc, BackPressureError):
        return ModelBusy(f"deployment {deployment} is at capacity (its queue is full); retry in a few seconds")
    if isinstance(exc, (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError)):
        return ModelUnavailable(f"deployment {deployment} lost the replica {what}; it is being restarted, "
                                "retry in a few seconds")
    return None


class InvalidModelInput(ModelError):
    """The input passed validation at the ingress but this model cannot use it (HTTP 400)."""

    status_code = 400
