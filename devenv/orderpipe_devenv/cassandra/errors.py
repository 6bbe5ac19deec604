"""Why a local Cassandra could not be provided."""


class CassandraError(RuntimeError):
    """Cassandra could not be provided; the message says why and what to do."""


class JarFetchError(CassandraError):
    pass


class NodeStartError(CassandraError):
    pass
