"""The local AWS endpoints: moto for DynamoDB (and SQS if asked), ElasticMQ for SQS by default.

ElasticMQ is the default SQS because moto's cost per call grows with queue depth (see
docs/benchmarks.md for the side-by-side figures). Where ElasticMQ cannot start (no java or mvn),
moto serves SQS too, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Literal

from orderpipe_devenv.aws.elasticmq import ElasticMqProcess, ElasticMqUnavailableError
from orderpipe_devenv.aws.moto_server import MotoServerProcess

log = logging.getLogger("orderpipe.runtime")

SqsBackend = Literal["elasticmq", "moto"]
DEFAULT_SQS_BACKEND: SqsBackend = "elasticmq"


@dataclass(frozen=True)
class LocalAws:
    endpoint_url: str  # AWS_ENDPOINT_URL: DynamoDB (and every service without its own endpoint)
    sqs_endpoint_url: str | None  # AWS_ENDPOINT_URL_SQS when SQS is served elsewhere
    sqs_backend: SqsBackend


@contextmanager
def local_aws(sqs_backend: SqsBackend = DEFAULT_SQS_BACKEND) -> Iterator[LocalAws]:
    with ExitStack() as stack:
        moto = stack.enter_context(MotoServerProcess())
        if sqs_backend == "elasticmq":
            try:
                elasticmq = stack.enter_context(ElasticMqProcess())
            except ElasticMqUnavailableError as error:
                log.warning("ElasticMQ unavailable (%s); moto serves SQS", error)
            else:
                yield LocalAws(moto.endpoint_url, elasticmq.endpoint_url, "elasticmq")
                return
        yield LocalAws(moto.endpoint_url, None, "moto")
