"""The environment's secrets: generated and provided, kept in AWS Secrets Manager.

Each secret lives at `audit-x/<env>/<name>`, encrypted with a KMS key that belongs to that
environment alone, so one environment's credentials can never decrypt another's. Generated
values come from pulumi-random; provided ones from `pulumi config set --secret`. Every value is
a Pulumi secret output: the state holds it encrypted and no output, label or log shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.lib.context import EnvironmentContext
from components.settings import GENERATED_SECRET_NAMES, ProvidedSecrets
from components.settings.secrets import ALTERNATING, SLOTS, slot_keepers


@dataclass(frozen=True)
class GeneratedSecret:
    name: str
    length: int
    purpose: str


# Alphanumeric only: these values go into URLs (DATABASE_URL, REDIS_URL) and config files, where
# any punctuation would need escaping somewhere. 40 alphanumerics carry ~238 bits.
_LENGTHS_AND_PURPOSES = {
    "postgres-password": (40, "PostgreSQL password of the bootstrap superuser (the jobs, the server's probe, DBAs)"),
    "postgres-login-a": (40, "PostgreSQL password of the app's login a (used in turn with b)"),
    "postgres-login-b": (40, "PostgreSQL password of the app's login b (used in turn with a)"),
    "redis-password": (40, "Redis password a of the default user (used in turn with b)"),
    "redis-password-b": (40, "Redis password b of the default user (used in turn with a)"),
    "influxdb-admin-password": (40, "InfluxDB initial user's password"),
    "influxdb-operator-token": (64, "InfluxDB operator (all-access) token"),
    "grafana-admin-password": (40, "Grafana admin password"),
    "secret-key-base": (128, "Rails SECRET_KEY_BASE"),
    "pgbackrest-cipher-pass": (64, "pgBackRest repository encryption passphrase (never rotated)"),
}
# The names are the settings' (where `rotation` is validated against them).
GENERATED_SECRETS: tuple[GeneratedSecret, ...] = tuple(
    GeneratedSecret(name, *_LENGTHS_AND_PURPOSES[name]) for name in GENERATED_SECRET_NAMES
)


def keepers(name: str, rotation: Mapping[str, str]) -> dict[str, str]:
    """What replaces a generated password: a new rotation marker, or for a credential used in
    turn, the generation its slot's turn came at (components/settings/secrets.py)."""
    return slot_keepers(name, rotation) or {"rotation": rotation.get(name, "initial")}


@dataclass(frozen=True)
class StoredSecret:
    secret: aws.secretsmanager.Secret
    version: aws.secretsmanager.SecretVersion
    value: pulumi.Output[str]


class Secrets(pulumi.ComponentResource):
    kms_key: aws.kms.Key
    kms_alias: aws.kms.Alias
    generated: dict[str, random.RandomPassword]
    stored: dict[str, StoredSecret]

    def __init__(
        self,
        name: str,
        provided: ProvidedSecrets,
        *,
        ctx: EnvironmentContext,
        rotation: Mapping[str, str],
        recovery_window_days: int,
        kms_deletion_window_days: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:secrets:Secrets", name, None, opts)
        self._ctx = ctx
        self._recovery_window_days = recovery_window_days

        self.kms_key = aws.kms.Key(
            ctx.name("kms"),
            description=f"Encrypts the secrets and backups of audit-x {ctx.environment}",
            enable_key_rotation=True,
            deletion_window_in_days=kms_deletion_window_days,
            tags=ctx.tags(Name=ctx.name("kms")),
            opts=ctx.stateful(self),
        )
        self.kms_alias = aws.kms.Alias(
            ctx.name("kms-alias"),
            name=f"alias/{ctx.name()}",
            target_key_id=self.kms_key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.generated = {}
        self.stored = {}
        self._rotation = rotation
        for spec in GENERATED_SECRETS:
            self.generate(spec)
        for secret_name, value in provided.present().items():
            self.stored[secret_name] = self.store(
                secret_name,
                "provided by operators with `pulumi config set --secret`",
                pulumi.Output.secret(value.get_secret_value()),
            )

        self.register_outputs({"arns": self.arns(), "kmsKeyArn": self.kms_key.arn})

    def generate(self, spec: GeneratedSecret) -> pulumi.Output[str]:
        """Generate a secret and keep it; components add the ones only their environment has."""
        password = random.RandomPassword(
            self._ctx.name(spec.name),
            length=spec.length,
            special=False,
            min_lower=4,
            min_upper=4,
            min_numeric=4,
            keepers=keepers(spec.name, self._rotation),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.generated[spec.name] = password
        self.stored[spec.name] = self.store(spec.name, spec.purpose, password.result)
        return self.stored[spec.name].value

    def store(self, name: str, description: str, value: pulumi.Output[str]) -> StoredSecret:
        """Keep a value in Secrets Manager as `audit-x/<env>/<name>`; components add their own."""
        ctx = self._ctx
        secret = aws.secretsmanager.Secret(
            ctx.name("secret", name),
            name=ctx.secret_name(name),
            description=description,
            kms_key_id=self.kms_key.arn,
            recovery_window_in_days=self._recovery_window_days,
            tags=ctx.tags(),
            opts=ctx.stateful(self),
        )
        version = aws.secretsmanager.SecretVersion(
            ctx.name("secret", name, "version"),
            secret_id=secret.id,
            secret_string=value,
            # Parented to the component, not the secret: protection is inherited, and a version
            # must stay replaceable for rotation to work.
            opts=pulumi.ResourceOptions(parent=self),
        )
        return StoredSecret(secret=secret, version=version, value=pulumi.Output.secret(value))

    def value(self, name: str) -> pulumi.Output[str]:
        """A secret's value, as a secret output, for wiring into the containers that use it."""
        return self.stored[name].value

    def alternating(self, marker: str) -> dict[str, pulumi.Output[str]]:
        """The two values of a credential used in turn, by slot (a, b)."""
        return {slot: self.value(name) for slot, name in zip(SLOTS, ALTERNATING[marker], strict=True)}

    def optional_value(self, name: str) -> pulumi.Output[str] | None:
        stored = self.stored.get(name)
        return stored.value if stored else None

    def arns(self) -> dict[str, pulumi.Output[str]]:
        """Secret ARNs by name: where an operator finds a value, never the value itself."""
        return {name: stored.secret.arn for name, stored in self.stored.items()}
