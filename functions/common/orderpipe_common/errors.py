"""The base of the functions' domain errors: a message a caller can act on, and the fields at fault.

Domain code raises subclasses (`QueueUnavailableError`, `StoreUnavailableError`, ...); it never
chooses an HTTP status. The REST handlers map each to an answer (orderpipe_common.http.ErrorAnswer).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    def __init__(self, message: str, *, fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # One entry per field at fault: {"field": "items.0.quantity", "message": ..., "type": ...}.
        self.fields = fields
