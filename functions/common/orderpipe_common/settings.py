"""Typed settings read from the environment once, at start; the one place each setting is named.

Each function defines one model (a subclass of `FunctionSettings`) and calls `load(Model)`; a missing
or malformed variable fails the cold start with the variable's name. Names of real resources
(queue URLs, table names, contact points) have no defaults.

A field's name is its environment variable (upper-cased, matched without regard to case) and its
default is the setting's default. Values arrive as the environment's strings; pydantic converts them
(a list or mapping field splits or decodes its own text). Not pydantic-settings: reading a dozen
variables is all the functions need, and importing it (with asyncio, dotenv and its cloud sources)
cost every cold start about 30 ms (docs/benchmarks.md, cold_init).
The CDK stack and the local runtime never spell variable names: they render a function's
environment with `Model.environment(field=value, ...)`, which refuses fields the model lacks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from orderpipe_common.cassandra_backends import (
    ASTRA_PROTOCOL_VERSIONS,
    KEYSPACES_PORT,
    KEYSPACES_PROTOCOL_VERSION,
    KEYSPACES_PROTOCOL_VERSIONS,
    SELF_MANAGED_PORT,
    Backend,
    KeyspacesAuth,
    consistency_problems,
)
from orderpipe_common.tuning import DEFAULT_TUNING

ConsistencyName = Literal["ONE", "TWO", "THREE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL", "LOCAL_ONE"]
# How a node's certificate is matched. The driver connects to every node by its IP address (the
# contact points and the peers it finds in system.peers), so a default name check is an IP check.
#   server_name: every node's certificate carries CASSANDRA_TLS_SERVER_NAME (checked for each node);
#   ip_san:      each node's certificate carries its own IP address as a subject alternative name;
#   chain_only:  the chain is verified against the cluster's own CA, no name is checked.
HostnameCheck = Literal["server_name", "ip_san", "chain_only"]
# Native protocol versions a pin may name (3: Cassandra 2.1+, 4: 2.2+, 5: 4.0+).
PROTOCOL_VERSIONS = (3, 4, 5)


class SettingsError(RuntimeError):
    """The environment does not describe a working configuration."""


class FunctionSettings(BaseModel):
    # validate_default: a default is checked like a value from the environment.
    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    def __init__(self, **values: Any) -> None:
        """Values given here win; every other field comes from the environment, else its default."""
        super().__init__(**{**type(self).from_environment(os.environ), **values})

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> dict[str, str]:
        """The values of this model's variables in `environ`, by field name."""
        variables = {name.upper(): name for name in cls.model_fields}
        return {variables[key.upper()]: value for key, value in environ.items() if key.upper() in variables}

    @classmethod
    def environment(cls, **values: Any) -> dict[str, str]:
        """The environment variables that give these fields these values.

        None leaves a variable out (its default applies); lists become comma-separated, mappings
        JSON, booleans true/false, numbers their shortest form. Strings pass as they are, so CDK
        tokens (resolved at deploy time) work too.
        """
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            raise SettingsError(f"{cls.__name__} has no setting {', '.join(unknown)}")
        return {name.upper(): _render(value) for name, value in values.items() if value is not None}

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of field `name` (for tools that read the environment themselves)."""
        if name not in cls.model_fields:
            raise SettingsError(f"{cls.__name__} has no setting {name}")
        return name.upper()

    @classmethod
    def default(cls, name: str) -> Any:
        """A field's default (for tools that state it once more, e.g. in a CLI's help)."""
        return cls.model_fields[name].get_default(call_default_factory=True)


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


class PowertoolsSettings(FunctionSettings):
    """Read by Powertools itself; modelled so the stack and the local runtime render them alike."""

    powertools_service_name: str
    powertools_metrics_namespace: str = "orderpipe"
    powertools_log_level: str = "INFO"
    powertools_trace_disabled: bool = False
    powertools_metrics_disabled: bool = False


class CassandraSettings(FunctionSettings):
    # Which kind of Cassandra (orderpipe_common.cassandra_backends says what each accepts).
    cassandra_backend: Backend = "self-managed"
    # The environment gives "host1,host2" (or a JSON list). Astra takes none (the bundle names them).
    cassandra_contact_points: list[str] = Field(
        default_factory=list, description="Comma-separated hosts, e.g. 10.0.1.5,10.0.2.5"
    )
    # None: the backend's port (9042 self-managed, 9142 Amazon Keyspaces); see `port`.
    cassandra_port: int | None = Field(default=None, ge=1, le=65535)
    # Required for a self-managed cluster; elsewhere None lets the driver take the contact point's.
    cassandra_local_dc: str | None = None
    cassandra_keyspace: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    # The stack and the local runtime render these from the shared tuning; the defaults are the same.
    cassandra_write_consistency: ConsistencyName = DEFAULT_TUNING.write_consistency  # type: ignore[assignment]
    cassandra_read_consistency: ConsistencyName = DEFAULT_TUNING.read_consistency  # type: ignore[assignment]
    # Credentials come from Secrets Manager when deployed (never plaintext environment): JSON
    # {username, password} (self-managed; Keyspaces service-specific credentials), or the Astra
    # application token (JSON {token} or the bare AstraCS:... string).
    cassandra_secret_arn: str | None = None
    # ...or from these two, for a local cluster with authentication.
    cassandra_username: str | None = None
    cassandra_password: str | None = None
    # Amazon Keyspaces: sign with the function role's credentials (SigV4), or use the
    # service-specific credentials of an IAM user from the secret.
    cassandra_keyspaces_auth: KeyspacesAuth = "sigv4"
    # Astra: the secure connect bundle, a file (local use) or a secret whose SecretBinary is the zip
    # (written to the temporary directory at cold start: the bundle directory is read-only).
    cassandra_astra_bundle_file: str | None = None
    cassandra_astra_bundle_secret_arn: str | None = None
    # Reading the secret(s): short timeouts and few attempts, so a missing endpoint or security
    # group rule fails a cold start (or the schema custom resource) in seconds, not minutes.
    cassandra_secret_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    cassandra_secret_read_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    cassandra_secret_max_attempts: int = Field(default=3, ge=1, le=10)  # in all, the first included
    # Self-managed only: Amazon Keyspaces is always TLS (its own trust bundle), Astra's bundle carries TLS.
    cassandra_tls: bool = False
    # The cluster's CA: a PEM file (shipped in the bundle) or a secret holding the PEM; neither
    # means the system trust store (public CAs). Keyspaces: defaults to the shipped Keyspaces roots.
    cassandra_tls_ca_file: str | None = None
    cassandra_tls_ca_secret_arn: str | None = None
    cassandra_tls_hostname_check: HostnameCheck = "ip_san"
    # Keyspaces: defaults to the contact point (the service endpoint's name).
    cassandra_tls_server_name: str | None = None
    # None: the driver negotiates the highest version both sides speak (Keyspaces: 4, see `protocol_version`).
    cassandra_protocol_version: int | None = Field(
        default=None, ge=min(PROTOCOL_VERSIONS), le=max(PROTOCOL_VERSIONS)
    )
    # Per contact point, tried one after another: a node in the same VPC answers in milliseconds.
    cassandra_connect_timeout_seconds: float = 2.0
    cassandra_request_timeout_seconds: float = 5.0

    @property
    def port(self) -> int:
        if self.cassandra_port is not None:
            return self.cassandra_port
        return KEYSPACES_PORT if self.cassandra_backend == "keyspaces" else SELF_MANAGED_PORT

    @property
    def protocol_version(self) -> int | None:
        """The version to pin, None to negotiate."""
        if self.cassandra_protocol_version is None and self.cassandra_backend == "keyspaces":
            return KEYSPACES_PROTOCOL_VERSION
        return self.cassandra_protocol_version

    @field_validator("cassandra_contact_points", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [host.strip() for host in value.split(",") if host.strip()]
        return value

    @field_validator("cassandra_protocol_version", "cassandra_port", "cassandra_local_dc", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="wrap")
    @classmethod
    def _missing_with_the_rest(cls, data: Any, handler: Any) -> Any:
        """When other variables are wrong too, say also which ones the backend needs (all at once)."""
        try:
            return handler(data)
        except ValidationError as error:
            missing = cls._missing_for_backend(data) if isinstance(data, dict) else []
            if not missing:
                raise
            details = [
                InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e.get("ctx", {}))
                for e in error.errors()
            ]
            details += [
                InitErrorDetails(type=PydanticCustomError("backend", m), loc=(), input=data) for m in missing
            ]
            raise ValidationError.from_exception_data(error.title, details) from None

    @staticmethod
    def _missing_for_backend(data: dict[str, Any]) -> list[str]:
        backend = data.get("cassandra_backend") or "self-managed"
        needed = {
            "self-managed": ("cassandra_contact_points", "cassandra_local_dc"),
            "keyspaces": ("cassandra_contact_points",),
        }
        return [
            f"environment variable {name.upper()} is not set (needed with CASSANDRA_BACKEND={backend})"
            for name in needed.get(str(backend), ())
            if not data.get(name)
        ]

    @model_validator(mode="after")
    def _backend_is_complete(self) -> CassandraSettings:
        backend = self.cassandra_backend
        given = f"CASSANDRA_BACKEND={backend}"
        if backend == "self-managed":
            for name in ("cassandra_astra_bundle_file", "cassandra_astra_bundle_secret_arn"):
                if getattr(self, name):
                    raise ValueError(f"{name.upper()} is only used with CASSANDRA_BACKEND=astra")
        if backend in ("self-managed", "keyspaces") and not self.cassandra_contact_points:
            raise ValueError(
                f"environment variable CASSANDRA_CONTACT_POINTS is not set (needed with {given})"
            )
        if backend == "self-managed" and not self.cassandra_local_dc:
            raise ValueError(f"environment variable CASSANDRA_LOCAL_DC is not set (needed with {given})")
        if backend == "keyspaces":
            self._keyspaces_is_complete(given)
        if backend == "astra":
            self._astra_is_complete(given)
        problems = consistency_problems(
            backend, write=self.cassandra_write_consistency, read=self.cassandra_read_consistency
        )
        if problems:
            raise ValueError(
                "; ".join(problems) + " (CASSANDRA_WRITE_CONSISTENCY / CASSANDRA_READ_CONSISTENCY)"
            )
        return self._tls_is_complete()

    def _keyspaces_is_complete(self, given: str) -> None:
        if self.cassandra_port not in (None, KEYSPACES_PORT):
            raise ValueError(f"CASSANDRA_PORT must be {KEYSPACES_PORT} with {given} (its only port)")
        if self.cassandra_protocol_version not in (None, *KEYSPACES_PROTOCOL_VERSIONS):
            raise ValueError(
                f"CASSANDRA_PROTOCOL_VERSION must be one of {KEYSPACES_PROTOCOL_VERSIONS} with {given}"
            )
        for name in (
            "cassandra_astra_bundle_file",
            "cassandra_astra_bundle_secret_arn",
            "cassandra_tls_ca_secret_arn",
        ):
            if getattr(self, name):
                raise ValueError(f"{name.upper()} is not used with {given}")
        has_credentials = bool(
            self.cassandra_secret_arn or self.cassandra_username or self.cassandra_password
        )
        if self.cassandra_keyspaces_auth == "sigv4" and has_credentials:
            raise ValueError(
                "with CASSANDRA_KEYSPACES_AUTH=sigv4 the function's role signs: CASSANDRA_SECRET_ARN / "
                "CASSANDRA_USERNAME / CASSANDRA_PASSWORD are for CASSANDRA_KEYSPACES_AUTH=service_specific"
            )
        if self.cassandra_keyspaces_auth == "service_specific" and not (
            self.cassandra_secret_arn or (self.cassandra_username and self.cassandra_password)
        ):
            raise ValueError(
                "CASSANDRA_KEYSPACES_AUTH=service_specific needs the service-specific credentials: "
                "CASSANDRA_SECRET_ARN (or CASSANDRA_USERNAME and CASSANDRA_PASSWORD)"
            )

    def _astra_is_complete(self, given: str) -> None:
        if self.cassandra_contact_points:
            raise ValueError(
                f"CASSANDRA_CONTACT_POINTS must not be set with {given}: the bundle names the hosts"
            )
        for name in (
            "cassandra_port",
            "cassandra_tls_ca_file",
            "cassandra_tls_ca_secret_arn",
            "cassandra_tls_server_name",
        ):
            if getattr(self, name) is not None:
                raise ValueError(
                    f"{name.upper()} is not used with {given}: the secure connect bundle carries it"
                )
        if self.cassandra_tls:
            raise ValueError(f"CASSANDRA_TLS is not used with {given}: the secure connect bundle carries TLS")
        if self.cassandra_protocol_version not in (None, *ASTRA_PROTOCOL_VERSIONS):
            raise ValueError(
                f"CASSANDRA_PROTOCOL_VERSION must be one of {ASTRA_PROTOCOL_VERSIONS} with {given} (no v5)"
            )
        bundles = [
            n
            for n in ("cassandra_astra_bundle_file", "cassandra_astra_bundle_secret_arn")
            if getattr(self, n)
        ]
        if len(bundles) != 1:
            raise ValueError(
                f"{given} needs the secure connect bundle: set one of CASSANDRA_ASTRA_BUNDLE_SECRET_ARN "
                "or CASSANDRA_ASTRA_BUNDLE_FILE" + (", not both" if bundles else "")
            )
        if not (self.cassandra_secret_arn or self.cassandra_password):
            raise ValueError(
                f"{given} needs the application token: CASSANDRA_SECRET_ARN (a secret holding AstraCS:...) "
                "or CASSANDRA_PASSWORD"
            )

    def _tls_is_complete(self) -> CassandraSettings:
        if not self.cassandra_tls or self.cassandra_backend != "self-managed":
            return self
        if self.cassandra_tls_hostname_check == "server_name" and not self.cassandra_tls_server_name:
            raise ValueError(
                "environment variable CASSANDRA_TLS_SERVER_NAME is not set "
                "(needed with CASSANDRA_TLS_HOSTNAME_CHECK=server_name)"
            )
        has_ca = self.cassandra_tls_ca_file or self.cassandra_tls_ca_secret_arn
        if self.cassandra_tls_hostname_check == "chain_only" and not has_ca:
            raise ValueError(
                "CASSANDRA_TLS_HOSTNAME_CHECK=chain_only needs the cluster's own CA "
                "(CASSANDRA_TLS_CA_FILE or CASSANDRA_TLS_CA_SECRET_ARN)"
            )
        return self


def load[SettingsT: FunctionSettings](model: type[SettingsT], **overrides: Any) -> SettingsT:
    try:
        return model(**overrides)
    except ValidationError as error:
        problems = []
        for detail in error.errors(include_url=False, include_input=False):
            if not detail["loc"]:  # a check across fields: its message names the variables
                problems.append(str(detail["msg"]).removeprefix("Value error, "))
                continue
            variable = str(detail["loc"][0]).upper()
            reason = "is not set" if detail["type"] == "missing" else f"is invalid: {detail['msg']}"
            problems.append(f"environment variable {variable} {reason}")
        raise SettingsError(f"{model.__name__}: " + "; ".join(problems)) from None


def from_mapping[SettingsT: FunctionSettings](
    model: type[SettingsT], variables: dict[str, str], **overrides: Any
) -> SettingsT:
    """Settings from environment-style names given explicitly (tools that configure a function)."""
    values: dict[str, Any] = {name.lower(): value for name, value in variables.items()}
    return load(model, **values, **overrides)
