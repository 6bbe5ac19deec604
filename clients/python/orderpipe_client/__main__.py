"""`python -m orderpipe_client submit FILE ...`."""

from orderpipe_client.cli import main

raise SystemExit(main(prog="python -m orderpipe_client"))
