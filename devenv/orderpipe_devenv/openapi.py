"""Generate the OpenAPI document of the HTTP API from the handlers and the order model.

Each function that serves HTTP contributes an `ApiPart`: its Powertools resolver (`app`), the
pydantic models its documented request bodies refer to (`OPENAPI_COMPONENT_MODELS`) and its security
schemes (`OPENAPI_SECURITY_SCHEMES`, a mapping or a function returning one), read from the module by
`part_from_module`. The parts are merged into one document (a path+method or a component defined twice differently is an error), component
schemas nothing refers to are dropped, and the result is committed as docs/openapi.json; the test
tests/unit/test_openapi.py fails when the committed document is stale.

    .venv/bin/python -m orderpipe_devenv.openapi           # rewrite docs/openapi.json
    .venv/bin/python -m orderpipe_devenv.openapi --check   # exit 1 when it is stale

To add a function's routes (e.g. the reader's `GET /orders/{order_id}`): append its handler module
to `API_MODULES` and regenerate.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import SecurityScheme
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

API_MODULES: tuple[str, ...] = ("orderpipe_ingest.handler", "orderpipe_reader.handler")
TITLE = "orderpipe"
API_VERSION = "1.0.0"
DESCRIPTION = (
    "Asynchronous order pipeline. Producers POST orders and get `202 Accepted` as soon as they are "
    "queued; clients poll `GET /orders/{order_id}` until the order is stored. Errors have the body "
    '`{"error": {"code", "message", "fields"}}`; `fields` names each invalid field.\n\n'
    "Request bodies are UTF-8 JSON. An object that repeats a key is refused with 400 (parsers "
    "disagree on which value wins). Free text is carried as sent, any Unicode character included, "
    "and read back the same; a string holding an escaped lone surrogate (`\\ud800` without its "
    "pair) is not text and is refused with 422 naming the field. Prices are exact decimals with at "
    "most 2 places, as a JSON number or a string of digits."
)
COMPONENT_PREFIX = "#/components/schemas/"
DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE_COMMAND = ".venv/bin/python -m orderpipe_devenv.openapi"


@dataclass(frozen=True)
class ApiPart:
    resolver: APIGatewayRestResolver
    component_models: Sequence[type[BaseModel]] = ()
    security_schemes: Mapping[str, SecurityScheme] = field(default_factory=dict)


def part_from_module(module_name: str) -> ApiPart:
    module = importlib.import_module(module_name)
    schemes = getattr(module, "OPENAPI_SECURITY_SCHEMES", {})
    if callable(schemes):  # built on demand: the OpenAPI models stay off the function's cold start
        schemes = schemes()
    return ApiPart(
        resolver=module.app,
        component_models=tuple(getattr(module, "OPENAPI_COMPONENT_MODELS", ())),
        security_schemes=dict(schemes),
    )


def _merge_into(target: dict[str, Any], source: Mapping[str, Any], what: str) -> None:
    for name, value in source.items():
        if name in target and target[name] != value:
            raise ValueError(f"{what} {name!r} is defined twice, differently")
        target[name] = value


def _model_schemas(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    models = list(models)
    if not models:
        return {}
    _, schema = models_json_schema(
        [(model, "validation") for model in models], ref_template=COMPONENT_PREFIX + "{model}"
    )
    return _without_null_defaults(dict(schema.get("$defs", {})))


def _without_null_defaults(node: Any) -> Any:
    # Powertools' document is dumped with exclude_none, which drops `"default": null`; match it.
    if isinstance(node, dict):
        return {k: _without_null_defaults(v) for k, v in node.items() if not (k == "default" and v is None)}
    if isinstance(node, list):
        return [_without_null_defaults(v) for v in node]
    return node


def _references(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(COMPONENT_PREFIX):
                yield value.removeprefix(COMPONENT_PREFIX)
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _reachable(paths: Mapping[str, Any], schemas: Mapping[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = list(_references(paths))
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        todo.extend(_references(schemas[name]))
    return seen


def build_document(parts: Sequence[ApiPart]) -> dict[str, Any]:
    """One OpenAPI 3.1 document for all parts."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    security_schemes: dict[str, Any] = {}
    for part in parts:
        document = part.resolver.get_openapi_schema(
            title=TITLE,
            version=API_VERSION,
            security_schemes=dict(part.security_schemes) or None,
        ).model_dump(mode="json", by_alias=True, exclude_none=True)
        for path, operations in document.get("paths", {}).items():
            target = paths.setdefault(path, {})
            for method, operation in operations.items():
                if method in target:
                    raise ValueError(f"{method.upper()} {path} is defined by two parts")
                target[method] = operation
        components = document.get("components", {})
        _merge_into(schemas, components.get("schemas", {}), "component schema")
        _merge_into(security_schemes, components.get("securitySchemes", {}), "security scheme")
        _merge_into(schemas, _model_schemas(part.component_models), "component schema")

    missing = sorted(set(_references(paths)) - set(schemas))
    if missing:
        raise ValueError(f"the paths refer to undefined components: {', '.join(missing)}")
    used = _reachable(paths, schemas)
    components_out: dict[str, Any] = {"schemas": {name: schemas[name] for name in sorted(used)}}
    if security_schemes:
        components_out["securitySchemes"] = dict(sorted(security_schemes.items()))
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": API_VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": {path: paths[path] for path in sorted(paths)},
        "components": components_out,
    }


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def generate(modules: Sequence[str] = API_MODULES) -> str:
    """The document's text, as committed in docs/openapi.json."""
    return render(build_document([part_from_module(name) for name in modules]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs, write nothing")
    args = parser.parse_args(argv)
    text = generate()
    current = args.output.read_text() if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale; regenerate with: {REGENERATE_COMMAND}", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
