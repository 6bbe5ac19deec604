"""The test kit's command groups of the `orderpipe` CLI (see orderpipe_ops.cli)."""
