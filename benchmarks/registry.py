"""Names of the benchmarks and what each measures (kept import-light for `orderpipe bench --help`)."""

from __future__ import annotations

BENCHMARK_HELP: dict[str, str] = {
    "writer": "writer rows/s on the real node vs raw execute_concurrent_with_args and a per-record execute loop",
    "cold_init": "cold init of each function in a fresh process (the runtime's Python) vs importing its libraries",
    "ingest_cpu": "ingest CPU per order (SQS replaced by a no-op) vs json.loads + uuid4 + json.dumps",
    "reader_cache": "reader latency on cache hit vs miss (same ids), Cassandra reads per GET under polling",
    "end_to_end": "the local runtime under the load generator: sustained orders/s and p99 POST -> readable",
}
