"""Typed settings read from the environment once, at start.

Each function defines one model (a subclass of `FunctionSettings`) and calls `load(Model)`; a missing
or malformed variable fails the cold start with the variable's name. Names of real resources
(queue URLs, table names, contact points) have no defaults.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ConsistencyName = Literal["ONE", "TWO", "THREE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL", "LOCAL_ONE"]


class SettingsError(RuntimeError):
    """The environment does not describe a working configuration."""


class FunctionSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)


class CassandraSettings(FunctionSettings):
    # NoDecode: the environment gives "host1,host2", not JSON.
    cassandra_contact_points: Annotated[list[str], NoDecode] = Field(
        description="Comma-separated hosts, e.g. 10.0.1.5,10.0.2.5"
    )
    cassandra_port: int = 9042
    cassandra_local_dc: str
    cassandra_keyspace: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    cassandra_write_consistency: ConsistencyName = "LOCAL_QUORUM"
    cassandra_read_consistency: ConsistencyName = "LOCAL_QUORUM"
    # Credentials come from Secrets Manager when deployed (never plaintext environment).
    cassandra_secret_arn: str | None = None
    # ...or from these two, for a local cluster with authentication.
    cassandra_username: str | None = None
    cassandra_password: str | None = None
    cassandra_tls: bool = False
    cassandra_tls_ca_file: str | None = None
    cassandra_connect_timeout_seconds: float = 5.0
    cassandra_request_timeout_seconds: float = 5.0

    @field_validator("cassandra_contact_points", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [host.strip() for host in value.split(",") if host.strip()]
        return value


def load[SettingsT: FunctionSettings](model: type[SettingsT], **overrides: Any) -> SettingsT:
    try:
        return model(**overrides)
    except ValidationError as error:
        problems = []
        for detail in error.errors(include_url=False, include_input=False):
            variable = str(detail["loc"][0]).upper() if detail["loc"] else "?"
            reason = "is not set" if detail["type"] == "missing" else f"is invalid: {detail['msg']}"
            problems.append(f"environment variable {variable} {reason}")
        raise SettingsError(f"{model.__name__}: " + "; ".join(problems)) from None


def from_mapping[SettingsT: FunctionSettings](
    model: type[SettingsT], variables: dict[str, str], **overrides: Any
) -> SettingsT:
    """Settings from environment-style names given explicitly (tools that configure a function)."""
    values: dict[str, Any] = {name.lower(): value for name, value in variables.items()}
    return load(model, **values, **overrides)
