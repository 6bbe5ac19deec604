"""Where a local pipeline listens: `orderpipe run` writes one JSON file while it runs.

The file is `$ORDERPIPE_STATE_DIR/local-pipeline.json` (default `~/.local/state/orderpipe/`). It
names the API URL and credentials to use locally, each AWS endpoint (SQS on ElasticMQ, the rest on
moto), the queue URLs and the Cassandra contact point, with the pid of the `orderpipe run` that
wrote it and when that process started. `orderpipe run` removes it when it stops; a file whose
process is gone (a killed run) is ignored, also when its pid has been given to another process
since. The file is readable by its owner only (it holds the local API key). The operator commands, the load generator and `orderpipe submit` use it when they are
given no endpoint, stack or URL, and say so.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orderpipe_ops.pids import same_process

STATE_DIR_VARIABLE = "ORDERPIPE_STATE_DIR"
FILE_NAME = "local-pipeline.json"


def state_file() -> Path:
    configured = os.environ.get(STATE_DIR_VARIABLE)
    directory = (
        Path(configured).expanduser() if configured else Path.home() / ".local" / "state" / "orderpipe"
    )
    return directory / FILE_NAME


@dataclass(frozen=True, kw_only=True)
class LocalProducerCredentials:
    """How to authenticate as the local pipeline's producer, in either auth mode.

    jwt mode (the default): client credentials for the token endpoint. iam mode: an IAM access key to
    sign with SigV4 for `region`, and the usage-plan key sent as x-api-key alongside.
    """

    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    api_key: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str = "us-east-1"

    @property
    def iam(self) -> bool:
        return bool(self.access_key_id and self.secret_access_key)


@dataclass(frozen=True, kw_only=True)
class LocalPipeline:
    pid: int
    api_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    aws_endpoint_url: str  # DynamoDB, CloudWatch, Secrets Manager, ... (moto)
    sqs_endpoint_url: str  # ElasticMQ, or moto's when it serves SQS too
    queue_url: str
    dlq_url: str
    cassandra: str  # "127.0.0.1:9042 (embedded), keyspace orderpipe": for people to read
    resource_prefix: str  # its queues, tables and usage plan are named <prefix>-...
    # How to authenticate to the API: {"x-api-key": "..."} and/or what the auth mode needs.
    credentials: dict[str, str] = field(default_factory=dict)
    # Toxiproxy's API, when `orderpipe run --faults` put it between the functions and their
    # dependencies (`orderpipe fault` injects faults through it).
    toxiproxy_url: str | None = None
    started_at: float = field(default_factory=time.time)
    # The process's start time (/proc/<pid>/stat field 22): a reused pid then names another process.
    # None (a file from before it was recorded): the pid alone decides.
    pid_started: int | None = None

    @property
    def description(self) -> str:
        return f"the local pipeline of `orderpipe run` (pid {self.pid}, API {self.api_url})"

    def producer(self) -> LocalProducerCredentials:
        """The credentials of the producer `orderpipe run` created (what `load` and `submit` use)."""
        local = self.credentials
        return LocalProducerCredentials(
            token_url=local.get("token_url") or None,
            client_id=local.get("client_id") or None,
            client_secret=local.get("client_secret") or None,
            api_key=local.get("x-api-key") or None,
            access_key_id=local.get("access_key_id") or None,
            secret_access_key=local.get("secret_access_key") or None,
            region=local.get("region") or self.region,
        )

    def endpoint_url(self, service: str) -> str:
        return self.sqs_endpoint_url if service == "sqs" else self.aws_endpoint_url

    def client_options(self, service: str) -> dict[str, Any]:
        """Keyword arguments for `boto3.client(service, ...)` against this pipeline."""
        return {
            "endpoint_url": self.endpoint_url(service),
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }


def read(path: Path | None = None) -> LocalPipeline | None:
    """The running local pipeline, or None (no file, an unreadable one, or its `orderpipe run` is gone)."""
    path = path or state_file()
    try:
        data = json.loads(path.read_text())
        pipeline = LocalPipeline(**data)
    except (OSError, ValueError, TypeError):
        return None
    return pipeline if same_process(pipeline.pid, pipeline.pid_started) else None


def write(pipeline: LocalPipeline, path: Path | None = None) -> Path:
    path = path or state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(pipeline), indent=2) + "\n")
    temporary.chmod(0o600)  # it holds the local API key
    temporary.replace(path)
    return path


def remove(pid: int, path: Path | None = None) -> None:
    """Remove the file if it is still the one `pid` wrote (another run may have replaced it)."""
    path = path or state_file()
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass
