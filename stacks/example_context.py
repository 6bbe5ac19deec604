"""Example cluster values for an offline synth: `make synth` and the tests pass them with `-c`.

They describe no real cluster (a placeholder VPC, route table and addresses), so they are NOT in
cdk.json: a pasted `npx cdk deploy -c ...` gets only what it names, and synth refuses, naming the
keys, what it leaves out. `python -m stacks.example_context` prints them as CDK CLI options.
"""

from __future__ import annotations

import shlex
from typing import Any

# A self-managed cluster in a peered VPC (docs/deploy.md, section 3 option A). The replication is
# left to its default, NetworkTopologyStrategy with 3 replicas in cassandraLocalDc.
EXAMPLE_CONTEXT: dict[str, Any] = {
    "orderpipe:cassandraContactPoints": ["10.20.1.10", "10.20.2.10", "10.20.3.10"],
    "orderpipe:cassandraLocalDc": "dc1",
    "orderpipe:cassandraCidrs": ["10.20.0.0/16"],
    "orderpipe:cassandraPeerVpcId": "vpc-0fedcba9876543210",
    "orderpipe:cassandraPeerRouteTableIds": ["rtb-0fedcba9876543210"],
}


def cli_options() -> list[str]:
    """`-c key=value` for each example key, lists comma-separated (as the CLI passes them: strings)."""
    options = []
    for key, value in EXAMPLE_CONTEXT.items():
        text = ",".join(value) if isinstance(value, list) else str(value)
        options += ["-c", f"{key}={text}"]
    return options


if __name__ == "__main__":
    print(shlex.join(cli_options()))
