"""Root fixtures: each concern lives in its own module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.aws",
    "tests.fixtures.cassandra",
]
