"""cdk-nag (AwsSolutions) wiring and one helper for suppressions that must carry a reason."""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Suppress cdk-nag finding `rule_id` (e.g. "AwsSolutions-IAM5[Resource::*]") on scope and its children."""
    if len(reason) < 20:
        raise ValueError(f"a suppression of {rule_id} needs a real reason, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def add_nag_checks(app: cdk.App) -> None:
    """Run the AwsSolutions pack at synth; an unsuppressed finding makes synth fail (ValidationFailed)."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
