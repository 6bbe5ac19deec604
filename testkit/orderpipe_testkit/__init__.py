"""orderpipe's test kit: sample orders, one reset of every function's per-process state, the failure
drills and the load generator. Used by tests/, benchmarks/ and the `orderpipe load|drill` commands."""
