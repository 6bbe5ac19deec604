"""Command groups of the `orderpipe` CLI: one module each, exposing `register(subparsers)`."""
