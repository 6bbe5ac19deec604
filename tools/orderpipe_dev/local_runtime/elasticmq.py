"""ElasticMQ (a real SQS-compatible server, JVM) as a child process on loopback.

moto's SQS slows down linearly with queue depth (every call walks every message): under sustained
load it, not the pipeline, bounds local throughput. ElasticMQ keeps its cost per call flat. Its jars
come from Maven Central (`org.elasticmq:elasticmq-server_2.13`), resolved once into the same cache
as Cassandra's, and it is started with `java`, like the Cassandra node. The functions reach it
through boto3's standard service-specific endpoint variable (`AWS_ENDPOINT_URL_SQS`); DynamoDB
stays on moto (`AWS_ENDPOINT_URL`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from orderpipe_dev import cassandra_node as cn
from orderpipe_dev import maven_jars
from orderpipe_dev.local_runtime.moto_process import free_port

ELASTICMQ_VERSION = "1.7.1"
_CONFIG = """include classpath("application.conf")
node-address {{ protocol = http, host = "{host}", port = {port}, context-path = "" }}
rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "{host}", sqs-limits = strict }}
rest-stats {{ enabled = false }}
"""


class ElasticMqUnavailable(RuntimeError):
    pass


def jar_dir(version: str = ELASTICMQ_VERSION) -> Path:
    return cn.cache_root() / "elasticmq" / version / "lib"


def fetch_jars(version: str = ELASTICMQ_VERSION) -> Path:
    """The directory of ElasticMQ's runtime jars, resolved with Maven on first use (atomic, locked)."""
    artifact = maven_jars.Artifact("org.elasticmq", "elasticmq-server_2.13", version)
    try:
        return maven_jars.fetch_runtime_jars(artifact, jar_dir(version)).lib_dir
    except maven_jars.MavenFetchError as error:
        raise ElasticMqUnavailable(str(error)) from error


class ElasticMqProcess:
    """`with ElasticMqProcess() as sqs: sqs.endpoint_url` — stopped (never left behind) at the end."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, heap_mb: int = 256) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.heap_mb = heap_mb
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_seconds: float = 60) -> None:
        java = shutil.which("java")
        if java is None:
            raise ElasticMqUnavailable("java is not on PATH")
        lib = fetch_jars()
        self._workdir = Path(tempfile.mkdtemp(prefix="orderpipe-elasticmq-"))
        config = self._workdir / "elasticmq.conf"
        config.write_text(_CONFIG.format(host=self.host, port=self.port))
        log = open(self._workdir / "elasticmq.log", "wb")  # noqa: SIM115 (the child holds it)
        self._process = subprocess.Popen(
            [
                java,
                f"-Xmx{self.heap_mb}m",
                "-XX:+UseSerialGC",  # one small heap, 2 cores shared with everything else
                f"-Dconfig.file={config}",
                "-cp",
                f"{lib}/*",
                "org.elasticmq.server.Main",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=cn._die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ElasticMqUnavailable(
                    f"ElasticMQ exited with {self._process.returncode}: {self._log_tail()}"
                )
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/?Action=ListQueues", timeout=1).close()  # noqa: S310
                return
            except urllib.error.HTTPError:
                return  # it answers (an error for a bare request is still an answer)
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise ElasticMqUnavailable(
            f"ElasticMQ did not answer on {self.endpoint_url} within {timeout_seconds:.0f} s"
        )

    def _log_tail(self) -> str:
        path = self._workdir / "elasticmq.log" if self._workdir else None
        return path.read_text(errors="replace")[-2000:] if path and path.exists() else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> ElasticMqProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
