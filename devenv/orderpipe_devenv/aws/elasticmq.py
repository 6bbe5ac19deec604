"""ElasticMQ (a real SQS-compatible server, JVM) as a child process on loopback.

moto's SQS slows down linearly with queue depth (every call walks every message): under sustained
load it, not the pipeline, bounds local throughput. ElasticMQ keeps its cost per call flat. Its jars
come from Maven Central (`org.elasticmq:elasticmq-server_2.13`), resolved once into the same cache
as Cassandra's, and it is started with `java`, like the Cassandra node. The functions reach it
through boto3's standard service-specific endpoint variable (`AWS_ENDPOINT_URL_SQS`); DynamoDB
stays on moto (`AWS_ENDPOINT_URL`).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from orderpipe_devenv import maven_jars
from orderpipe_devenv.cache import cache_root
from orderpipe_devenv.processes import JavaNotFoundError, ServerProcess, ServerStartError, find_java

ELASTICMQ_VERSION = "1.7.1"
_CONFIG = """include classpath("application.conf")
node-address {{ protocol = http, host = "{host}", port = {port}, context-path = "" }}
rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "{host}", sqs-limits = strict }}
rest-stats {{ enabled = false }}
"""


class ElasticMqUnavailableError(RuntimeError):
    pass


def jar_dir(version: str = ELASTICMQ_VERSION) -> Path:
    return cache_root() / "elasticmq" / version / "lib"


def fetch_jars(version: str = ELASTICMQ_VERSION) -> Path:
    """The directory of ElasticMQ's runtime jars, resolved with Maven on first use (atomic, locked)."""
    artifact = maven_jars.Artifact("org.elasticmq", "elasticmq-server_2.13", version)
    try:
        return maven_jars.fetch_runtime_jars(artifact, jar_dir(version)).lib_dir
    except maven_jars.MavenFetchError as error:
        raise ElasticMqUnavailableError(str(error)) from error


class ElasticMqProcess(ServerProcess):
    """`with ElasticMqProcess() as sqs: sqs.endpoint_url` — stopped (never left behind) at the end."""

    name = "elasticmq"

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, heap_mb: int = 256) -> None:
        super().__init__(host=host, port=port)
        self.heap_mb = heap_mb

    def start(self) -> None:
        try:
            super().start()
        except (JavaNotFoundError, ServerStartError) as error:
            raise ElasticMqUnavailableError(str(error)) from error

    def command(self) -> list[str]:
        java, lib = find_java(), fetch_jars()
        assert self.workdir is not None
        config = self.workdir / "elasticmq.conf"
        config.write_text(_CONFIG.format(host=self.host, port=self.port))
        return [
            java,
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",  # one small heap, 2 cores shared with everything else
            # C1 only: a local run is minutes long, and C2 compiling the server's hot paths cost more
            # CPU than it saved within the first ~25,000 messages (docs/benchmarks.md: 16.3 s vs
            # 22.0 s of ElasticMQ CPU for the same 24,000 messages, start-up 2.3 s vs 3.5 s).
            "-XX:TieredStopAtLevel=1",
            f"-Dconfig.file={config}",
            "-cp",
            f"{lib}/*",
            "org.elasticmq.server.Main",
        ]

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.endpoint_url}/?Action=ListQueues", timeout=1).close()  # noqa: S310
        except urllib.error.HTTPError:
            return True  # it answers (an error for a bare request is still an answer)
        except OSError:
            return False
        return True
