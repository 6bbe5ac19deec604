"""Toxiproxy between the local functions and their dependencies, and the faults it can inject.

`FaultProxies.between(...)` puts one proxy in front of each dependency: every Cassandra node, SQS,
DynamoDB. `function_env()` is what the functions need to go through them; the runtime's own clients
(queue set-up, the SQS event source, which is AWS's side of the event source mapping) go direct.

Cassandra nodes are proxied on their own addresses (127.0.0.i) with one shared port: the driver
learns the other nodes from `system.peers` and connects to each at the port it was given, so with
the proxies on the same port every connection, to every node, goes through a proxy.

`FAULTS` names the faults a person (`orderpipe fault add`) or the nemesis drill injects:

| fault        | toxic                              | what the function sees                              |
|--------------|------------------------------------|-----------------------------------------------------|
| `black-hole` | timeout 0 on the way in            | connects, sends, never hears back                   |
| `latency`    | latency ms +- jitter on answers    | every answer late                                   |
| `reset`      | reset_peer                         | "connection reset by peer" on every connection     |
| `bandwidth`  | bandwidth KB/s on answers          | answers trickle in                                  |
| `limit-data` | limit_data bytes on answers        | connections closed after a few bytes of answer     |
| `down`       | (the proxy disabled)               | "connection refused": the server is gone            |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from orderpipe_common.settings import CassandraSettings
from orderpipe_devenv.processes import port_free, stable_port
from orderpipe_devenv.toxiproxy import Proxy, Toxic, ToxiproxyClient, ToxiproxyError

DEPENDENCIES = ("cassandra", "sqs", "dynamodb")


@dataclass(frozen=True)
class FaultKind:
    name: str
    description: str
    toxic: Callable[[int], Toxic] | None  # from the fault's size (ms, KB/s or bytes); None: `down`
    unit: str = ""
    default_size: int = 0


FAULTS: dict[str, FaultKind] = {
    fault.name: fault
    for fault in (
        FaultKind(
            "black-hole",
            "connections are accepted, requests vanish, nothing is answered",
            lambda _size: Toxic.timeout(0, stream="upstream"),
        ),
        FaultKind(
            "latency",
            "every answer arrives SIZE ms late (+-10%)",
            lambda ms: Toxic.latency(ms, jitter_ms=ms // 10),
            "ms",
            500,
        ),
        FaultKind("reset", "every connection is reset (TCP RST) at once", lambda _size: Toxic.reset_peer(0)),
        FaultKind(
            "bandwidth", "answers trickle in at SIZE KB/s", lambda kbps: Toxic.bandwidth(kbps), "KB/s", 10
        ),
        FaultKind(
            "limit-data",
            "each connection is closed after SIZE bytes of answers",
            lambda size: Toxic.limit_data(size),
            "bytes",
            2000,
        ),
        FaultKind("down", "the proxy stops listening: connections are refused", None),
    )
}


@dataclass
class FaultProxies:
    """The proxies in front of each dependency (one per Cassandra node)."""

    client: ToxiproxyClient
    cassandra: list[Proxy]
    sqs: Proxy
    dynamodb: Proxy

    @classmethod
    def between(
        cls,
        client: ToxiproxyClient,
        *,
        cassandra_hosts: Sequence[str],
        cassandra_port: int,
        sqs_endpoint_url: str,
        dynamodb_endpoint_url: str,
    ) -> FaultProxies:
        port = _free_port_on(cassandra_hosts)
        names = (
            ["cassandra"]
            if len(cassandra_hosts) == 1
            else [f"cassandra-{i + 1}" for i in range(len(cassandra_hosts))]
        )
        cassandra = [
            client.create_proxy(name, upstream=f"{host}:{cassandra_port}", listen=f"{host}:{port}")
            for name, host in zip(names, cassandra_hosts, strict=True)
        ]
        return cls(
            client=client,
            cassandra=cassandra,
            sqs=client.create_proxy(
                "sqs", upstream=_host_port(sqs_endpoint_url), listen=f"127.0.0.1:{stable_port()}"
            ),
            dynamodb=client.create_proxy(
                "dynamodb", upstream=_host_port(dynamodb_endpoint_url), listen=f"127.0.0.1:{stable_port()}"
            ),
        )

    def function_env(self) -> dict[str, str]:
        """The functions' environment variables that send them through the proxies."""
        return {
            **CassandraSettings.environment(
                cassandra_contact_points=[proxy.host for proxy in self.cassandra],
                cassandra_port=self.cassandra[0].port,
            ),
            # boto3's own variables: the service-specific endpoints.
            "AWS_ENDPOINT_URL_SQS": f"http://{self.sqs.listen}",
            "AWS_ENDPOINT_URL_DYNAMODB": f"http://{self.dynamodb.listen}",
        }

    @property
    def all(self) -> list[Proxy]:
        return [*self.cassandra, self.sqs, self.dynamodb]

    def named(self, target: str) -> list[Proxy]:
        """`cassandra` (every node), `cassandra-2` (one node), `sqs` or `dynamodb`."""
        return select_proxies(self.all, target)


def select_proxies(proxies: Sequence[Proxy], target: str) -> list[Proxy]:
    """The proxies `target` names: a proxy's own name, or `cassandra` for every Cassandra node."""
    chosen = [p for p in proxies if p.name == target or p.name.startswith(f"{target}-")]
    if not chosen:
        known = ", ".join(sorted({p.name for p in proxies} | {p.name.split("-")[0] for p in proxies}))
        raise ValueError(f"no proxy named {target!r}; there are: {known}")
    return chosen


def inject(proxies: Sequence[Proxy], fault: str, size: int | None = None) -> list[str]:
    """Put `fault` on each proxy; returns the toxic names added (empty for `down`)."""
    kind = FAULTS[fault]
    added = []
    for proxy in proxies:
        if kind.toxic is None:
            proxy.disable()
            continue
        toxic = kind.toxic(size if size is not None else kind.default_size)
        try:
            added.append(proxy.add(toxic).name)
        except ToxiproxyError as error:
            if error.status != 409:  # the same toxic is already there: the fault is on
                raise
    return added


def heal(proxies: Sequence[Proxy]) -> None:
    """Every toxic removed and every proxy listening again."""
    for proxy in proxies:
        for toxic in proxy.toxics():
            proxy.remove(toxic.name, missing_ok=True)
        if not proxy.client.proxy(proxy.name).enabled:
            proxy.enable()


def _host_port(endpoint_url: str) -> str:
    parts = urlsplit(endpoint_url)
    return f"{parts.hostname}:{parts.port}"


def _free_port_on(hosts: Sequence[str], attempts: int = 20) -> int:
    """A port nobody listens on at any of `hosts` (loopback addresses) right now, outside the
    ephemeral range: a proxy taken `down` listens on it again when it comes back up."""
    for _ in range(attempts):
        port = stable_port(hosts[0])
        if all(port_free(port, host) for host in hosts[1:]):
            return port
    raise RuntimeError(f"no port free on all of {', '.join(hosts)} after {attempts} tries")
