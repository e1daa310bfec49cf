"""An AWS identity for something on the Docker host, which is not on AWS: an IAM user with one
inline policy and one access key, the key kept in Secrets Manager and handed to its container as
a shared-credentials file (never as environment variables)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.lib.context import EnvironmentContext
from components.platform.secrets import Secrets


class AccessKeyIdentity(pulumi.ComponentResource):
    user: aws.iam.User
    policy: aws.iam.UserPolicy
    access_key: aws.iam.AccessKey

    def __init__(
        self,
        name: str,
        *,
        ctx: EnvironmentContext,
        policy: pulumi.Input[str],
        secrets: Secrets,
        stored_as: str,
        purpose: str,
        type_token: str = "audit-x:platform:AccessKeyIdentity",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # `type_token`: the backup identities keep the token they were created with (their URNs).
        super().__init__(type_token, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.user = aws.iam.User(name, name=name, tags=ctx.tags(), opts=child)
        self.policy = aws.iam.UserPolicy(f"{name}-policy", user=self.user.name, policy=policy, opts=child)
        self.access_key = aws.iam.AccessKey(f"{name}-key", user=self.user.name, opts=child)
        secrets.store(
            stored_as,
            purpose,
            pulumi.Output.json_dumps(
                {"access_key_id": self.access_key.id, "secret_access_key": self.access_key.secret}
            ),
        )
        self.register_outputs({"user": self.user.name})

    def profile(self, name: str) -> pulumi.Output[str]:
        """A profile of an AWS shared-credentials file."""
        return pulumi.Output.format(
            "[{0}]\naws_access_key_id = {1}\naws_secret_access_key = {2}\n",
            name,
            self.access_key.id,
            self.access_key.secret,
        )
