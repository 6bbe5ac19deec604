"""Python producer client for the orderpipe API."""
