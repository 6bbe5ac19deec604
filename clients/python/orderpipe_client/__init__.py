"""Python producer client for the orderpipe API.

from orderpipe_client import OrderpipeClient

with OrderpipeClient("http://127.0.0.1:8080", api_key="...") as client:
    accepted = client.submit({"customer_id": "c-1", "currency": "EUR",
                              "items": [{"sku": "SKU-1", "quantity": 1, "unit_price": "9.99"}]})
    order = client.wait_until_readable(accepted.order_id, timeout=30)
"""

from __future__ import annotations

from orderpipe_client._version import __version__
from orderpipe_client.auth import (
    ApiKeyAuth,
    BearerTokenAuth,
    ClientCredentialsTokenProvider,
    SigV4Auth,
    combine,
)
from orderpipe_client.client import OrderpipeClient, PreparedOrder, plan_batches
from orderpipe_client.errors import (
    AuthenticationError,
    OperationCancelledError,
    OrderNotReadableError,
    OrderpipeError,
    OrderRejectedError,
    SubmitFailedError,
    TokenRequestError,
    UnexpectedResponseError,
)
from orderpipe_client.models import (
    Accepted,
    BatchAccepted,
    BatchItemResult,
    ErrorResponse,
    FieldError,
    Order,
    OrderOutcome,
    OrderRequest,
)
from orderpipe_client.retry import RetryPolicy

__all__ = [
    "Accepted",
    "ApiKeyAuth",
    "AuthenticationError",
    "BatchAccepted",
    "BatchItemResult",
    "BearerTokenAuth",
    "ClientCredentialsTokenProvider",
    "ErrorResponse",
    "FieldError",
    "OperationCancelledError",
    "Order",
    "OrderNotReadableError",
    "OrderOutcome",
    "OrderRejectedError",
    "OrderRequest",
    "OrderpipeClient",
    "OrderpipeError",
    "PreparedOrder",
    "RetryPolicy",
    "SigV4Auth",
    "SubmitFailedError",
    "TokenRequestError",
    "UnexpectedResponseError",
    "__version__",
    "combine",
    "plan_batches",
]
