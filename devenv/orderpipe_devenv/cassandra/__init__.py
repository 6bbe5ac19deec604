"""A real Apache Cassandra on loopback, started with `java` from Maven Central jars (no Docker).

`jars` fetches the pinned version once into a cache outside the repository; `config` writes each
node's cassandra.yaml and JVM flags; `node` runs one JVM; `cluster` starts N of them in order and
never lets one outlive its owner; `detached` inspects and stops a cluster left running by
`orderpipe cassandra start`; `source` decides where the tests' and the local runtime's Cassandra
comes from (an existing cluster, a container, or these nodes).

The names below are the package's public surface:

    from orderpipe_devenv import cassandra as local_cassandra
    with local_cassandra.running_cluster() as cluster: ...
"""

from orderpipe_devenv.cassandra.cluster import (
    STATE_FILE_NAME,
    CassandraCluster,
    ClusterState,
    running_cluster,
)
from orderpipe_devenv.cassandra.config import (
    CLUSTER_NAME,
    DEFAULT_CQL_PORT,
    DEFAULT_JMX_PORT,
    DEFAULT_STORAGE_PORT,
    LOCAL_DC,
    ClusterSettings,
    NodeSpec,
    balanced_tokens,
    cassandra_yaml,
    java_command,
    node_address,
)
from orderpipe_devenv.cassandra.detached import (
    NodeStatus,
    default_base_dir,
    detached_status,
    read_state,
    stop_detached,
)
from orderpipe_devenv.cassandra.errors import CassandraError, JarFetchError, NodeStartError
from orderpipe_devenv.cassandra.jars import CASSANDRA_VERSION, fetch_jars, jar_dir, jars_ready
from orderpipe_devenv.cassandra.node import CassandraNode, cql_answers, rss_bytes

__all__ = [
    "CASSANDRA_VERSION",
    "CLUSTER_NAME",
    "DEFAULT_CQL_PORT",
    "DEFAULT_JMX_PORT",
    "DEFAULT_STORAGE_PORT",
    "LOCAL_DC",
    "STATE_FILE_NAME",
    "CassandraCluster",
    "CassandraError",
    "CassandraNode",
    "ClusterSettings",
    "ClusterState",
    "JarFetchError",
    "NodeSpec",
    "NodeStartError",
    "NodeStatus",
    "balanced_tokens",
    "cassandra_yaml",
    "cql_answers",
    "default_base_dir",
    "detached_status",
    "fetch_jars",
    "jar_dir",
    "jars_ready",
    "java_command",
    "node_address",
    "read_state",
    "rss_bytes",
    "running_cluster",
    "stop_detached",
]
