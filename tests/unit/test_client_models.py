"""The client's typed models say what docs/openapi.json says: the same fields, the same required ones."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from orderpipe_client import models

# clients/python sits two levels below the repository root, where the document lives.
OPENAPI = Path(models.__file__).resolve().parents[3] / "docs" / "openapi.json"

# Each document schema, and the client models that carry it.
CLIENT_MODELS: dict[str, tuple[type[BaseModel], ...]] = {
    "OrderAccepted": (models.Accepted,),
    "BatchAccepted": (models.BatchAccepted,),
    "BatchItemResult": (models.BatchItemResult,),
    "ErrorResponse": (models.ErrorResponse,),
    "ErrorDetail": (models.ErrorDetail,),
    "FieldError": (models.FieldError,),
    "OrderRequest": (models.OrderRequest,),
    "Order": (models.Order,),
    "LineItem": (models.LineItem, models.StoredLineItem),
    "ShippingAddress": (models.ShippingAddress, models.StoredShippingAddress),
}


def schemas() -> dict[str, Any]:
    return json.loads(OPENAPI.read_text())["components"]["schemas"]


def test_the_document_is_where_the_client_looks() -> None:
    assert OPENAPI.is_file(), OPENAPI


@pytest.mark.parametrize("name", sorted(CLIENT_MODELS))
def test_models_have_the_documents_fields_and_required_fields(name: str) -> None:
    # Given the document's schema for `name`
    schema = schemas()[name]
    documented, required = set(schema["properties"]), set(schema.get("required", []))
    for model in CLIENT_MODELS[name]:
        # Then the client's model has exactly its fields, and requires exactly those it requires
        fields = model.model_fields
        assert set(fields) == documented, f"{model.__name__} vs {name}"
        assert {field for field, info in fields.items() if info.is_required()} == required, (
            f"{model.__name__} vs {name}"
        )


def test_every_schema_a_producer_meets_has_a_client_model() -> None:
    assert set(schemas()) <= set(CLIENT_MODELS), set(schemas()) - set(CLIENT_MODELS)


def test_batch_item_statuses_are_the_documents() -> None:
    documented = set(schemas()["BatchItemResult"]["properties"]["status"]["enum"])
    assert set(typing.get_args(models.OrderStatus)) == documented


def test_the_accepted_status_is_the_documents_constant() -> None:
    status = schemas()["OrderAccepted"]["properties"]["status"]
    assert models.Accepted.model_fields["status"].default == status["const"] == status["default"]


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("OrderAccepted", models.Accepted),
        ("BatchAccepted", models.BatchAccepted),
        ("ErrorResponse", models.ErrorResponse),
    ],
)
def test_models_nest_the_documents_schemas(name: str, model: type[BaseModel]) -> None:
    # Given each $ref of the schema's properties
    for field, spec in schemas()[name]["properties"].items():
        refs = _refs(spec)
        # Then the model's field is typed with the model that carries the referenced schema
        annotation = model.model_fields[field].annotation
        nested = {arg for arg in _flatten(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)}
        expected = {carrier for ref in refs for carrier in CLIENT_MODELS[ref]}
        assert nested <= expected and bool(nested) == bool(refs), (name, field, nested, refs)


def _refs(spec: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(spec, dict):
        if "$ref" in spec:
            found.add(spec["$ref"].rsplit("/", 1)[-1])
        for value in spec.values():
            found |= _refs(value)
    elif isinstance(spec, list):
        for value in spec:
            found |= _refs(value)
    return found


def _flatten(annotation: Any) -> set[Any]:
    args = typing.get_args(annotation)
    if not args:
        return {annotation}
    return {leaf for arg in args for leaf in _flatten(arg)}


def test_an_answer_from_the_document_parses() -> None:
    # Given answers shaped as the document says (with a field a newer server might add)
    accepted = models.Accepted.model_validate(
        {"order_id": "5b0c8a1e-2f4d-4c1b-9a57-0d1e6f3c2b90", "extra": 1}
    )
    batch = models.BatchAccepted.model_validate(
        {
            "accepted": 1,
            "rejected": 1,
            "failed": 0,
            "results": [
                {"index": 0, "status": "accepted", "order_id": "5b0c8a1e-2f4d-4c1b-9a57-0d1e6f3c2b90"},
                {
                    "index": 1,
                    "status": "rejected",
                    "errors": [{"field": "currency", "message": "bad", "type": "value_error"}],
                },
            ],
        }
    )
    # Then they parse into the typed models
    assert accepted.status == "accepted"
    assert batch.results[1].errors is not None and batch.results[1].errors[0].field == "currency"
