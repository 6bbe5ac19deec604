#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth` (reads cdk.json) or `python app.py` (defaults only, no cdk.json)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# The functions' packages (tuning, table names, settings models) are imported by the stack, as by
# the local runtime: the settings models name every environment variable the stack sets.
for extra in (*sorted((ROOT / "functions").glob("*/")), ROOT):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402

from stacks.config import ContextError, OrderPipeConfig  # noqa: E402
from stacks.nag import add_nag_checks  # noqa: E402
from stacks.orderpipe_stack import OrderPipeStack  # noqa: E402


def build_app(app: cdk.App, *, nag: bool = True) -> OrderPipeStack:
    config = OrderPipeConfig.from_context(app.node.try_get_context)
    stack = OrderPipeStack(
        app,
        str(app.node.try_get_context("orderpipe:stackName") or "OrderPipe"),
        config=config,
        description="orderpipe: API Gateway -> Lambda -> SQS -> Lambda -> Apache Cassandra",
    )
    cdk.Tags.of(stack).add("project", "orderpipe")
    if nag:
        add_nag_checks(app)
    return stack


def main() -> None:
    context = None
    if "CDK_CONTEXT_JSON" not in os.environ:
        # Run as `python app.py` (not by the CDK CLI): use cdk.json's context, as the CLI would.
        context = json.loads((ROOT / "cdk.json").read_text()).get("context", {})
    app = cdk.App(context=context)
    try:
        build_app(app)
    except ContextError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    app.synth()


if __name__ == "__main__":
    main()
