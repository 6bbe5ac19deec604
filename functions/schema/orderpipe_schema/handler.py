"""CloudFormation custom resource (Provider framework on-event handler) that applies the migrations.

Create and Update apply every migration not yet applied; Delete keeps the data (orders outlive
stacks). Locally the same `apply_schema` is called by the local runtime and the tests.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orderpipe_common.cassandra_session import run_with_reconnect
from orderpipe_common.observability import logger, metrics
from orderpipe_common.settings import load
from orderpipe_schema.migrations import MigrationReport, apply_migrations
from orderpipe_schema.settings import SchemaSettings


def apply_schema(settings: SchemaSettings) -> MigrationReport:
    return run_with_reconnect(
        settings,
        lambda session: apply_migrations(
            session, keyspace=settings.cassandra_keyspace, dialect=settings.dialect()
        ),
    )


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event["RequestType"] == "Delete":
        # Before anything can fail: a Delete must succeed even with a broken environment (else the
        # stack is stuck in DELETE_FAILED / UPDATE_ROLLBACK_FAILED). The keyspace is kept.
        physical_id = event.get("PhysicalResourceId") or "orderpipe-schema"
        logger.info("stack deletion: keyspace kept", extra={"physical_resource_id": physical_id})
        return {"PhysicalResourceId": physical_id}
    settings = load(SchemaSettings)
    physical_id = f"orderpipe-schema-{settings.cassandra_keyspace}"
    report = apply_schema(settings)
    return {
        "PhysicalResourceId": physical_id,
        "Data": {
            "Keyspace": report.keyspace,
            "Applied": ",".join(str(v) for v in report.applied),
            "LatestVersion": str(max((*report.applied, *report.already_applied), default=0)),
        },
    }
