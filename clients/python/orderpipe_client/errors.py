"""What the client raises. Every exception ends in `Error` and derives from `OrderpipeError`."""

from __future__ import annotations

from collections.abc import Sequence

from orderpipe_client.models import FieldError


class OrderpipeError(Exception):
    """Base of every error this package raises."""


class OrderRejectedError(OrderpipeError):
    """The server refused the order (400/413/415/422, or 409 `idempotency_key_reused`); `errors` names
    each field. Not retried."""

    def __init__(self, message: str, *, status: int, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.errors = tuple(errors)


class SubmitFailedError(OrderpipeError):
    """No answer worth keeping within the retry budget (attempts or deadline): safe to send again."""

    def __init__(self, message: str, *, attempts: int, last_status: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_status = last_status


class AuthenticationError(OrderpipeError):
    """The API refused the credentials (401/403); retrying will not help."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class UnexpectedResponseError(OrderpipeError):
    """An answer the API does not document for this request (e.g. a 404 on POST: a wrong base URL)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class OrderNotReadableError(OrderpipeError, TimeoutError):
    """`wait_until_readable` ran out of time before the order could be read."""


class TokenRequestError(OrderpipeError):
    """The OAuth token endpoint did not issue a token."""


class OperationCancelledError(OrderpipeError):
    """The operation was cancelled (its cancel event was set) before it finished."""
