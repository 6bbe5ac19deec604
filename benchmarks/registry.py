"""Names of the benchmarks and what each measures (kept import-light for `orderpipe bench --help`)."""

from __future__ import annotations

BENCHMARK_HELP: dict[str, str] = {
    "writer": "writer rows/s and CPU per row over 0.5-2 ms of Toxiproxy latency and on a 3-node RF 3 cluster, vs raw execute_concurrent_with_args and a per-record loop",
    "cold_init": "cold init of each function's real bundle in a fresh python3.12 vs its bare libraries; tracing options compared",
    "ingest_cpu": "ingest CPU per order (SQS replaced by a no-op) vs json.loads + uuid4 + json.dumps",
    "reader_cache": "reader latency on cache hit vs miss (same ids), Cassandra reads per GET under polling",
    "end_to_end": "step test of the local pipeline (single and batch POSTs): highest rate with p99 POST -> readable <= 2 s and no backlog growth; the low-latency tuning at 20 orders/s",
}
