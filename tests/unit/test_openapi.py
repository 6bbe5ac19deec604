"""The committed OpenAPI document is the one the handlers and the order model generate."""

from __future__ import annotations

import json

from orderpipe_common.model import MAX_LINE_ITEMS_PER_ORDER, MAX_ORDERS_PER_BATCH
from orderpipe_devenv.openapi import DEFAULT_OUTPUT, REGENERATE_COMMAND, generate


def test_committed_document_matches_the_code() -> None:
    # Given the document generated from the handlers and the model
    generated = generate()
    # When compared with docs/openapi.json
    committed = DEFAULT_OUTPUT.read_text() if DEFAULT_OUTPUT.exists() else ""
    # Then they are the same
    assert committed == generated, (
        f"docs/openapi.json is stale (the handlers or the order model changed); regenerate it with:\n"
        f"    {REGENERATE_COMMAND}\nand commit the result"
    )


def test_document_states_the_contract_and_its_bounds() -> None:
    document = json.loads(generate())
    single = document["paths"]["/orders"]["post"]
    batch = document["paths"]["/orders/batch"]["post"]
    schemas = document["components"]["schemas"]

    assert set(single["responses"]) == {"202", "400", "401", "403", "409", "413", "415", "422", "503"}
    assert single["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OrderRequest"
    }
    batch_body = batch["requestBody"]["content"]["application/json"]["schema"]
    assert batch_body["maxItems"] == MAX_ORDERS_PER_BATCH
    assert schemas["OrderRequest"]["properties"]["items"]["maxItems"] == MAX_LINE_ITEMS_PER_ORDER
    assert schemas["OrderRequest"]["additionalProperties"] is False
    assert schemas["LineItem"]["properties"]["quantity"]["minimum"] == 1
    assert "Retry-After" in single["responses"]["503"]["headers"]
    assert single["security"] == [{"oauth2": ["orders/write"]}, {"sigv4": [], "apiKey": []}]


def test_every_operation_declares_its_security_and_scope() -> None:
    # Given the generated document
    document = json.loads(generate())
    schemes = document["components"]["securitySchemes"]
    # Then every operation needs a token with its route's scope (jwt) or SigV4 + usage-plan key (iam)
    scopes = {
        (path, method): operation["security"][0]["oauth2"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert scopes == {
        ("/orders", "post"): ["orders/write"],
        ("/orders/batch", "post"): ["orders/write"],
        ("/orders/{order_id}", "get"): ["orders/read"],
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            assert operation["security"][1] == {"sigv4": [], "apiKey": []}
            assert {"401", "403"} <= set(operation["responses"])
    assert set(schemes["oauth2"]["flows"]["clientCredentials"]["scopes"]) == {
        "orders/write",
        "orders/read",
        "orders/read-all",
    }
