"""The operators' command groups of the `orderpipe` CLI (see orderpipe_ops.cli)."""
