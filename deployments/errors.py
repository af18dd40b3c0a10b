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


class InvalidModelInput(ModelError):
    """The input passed validation at the ingress but this model cannot use it (HTTP 400)."""

    status_code = 400
