"""The audit-x policy pack: `pulumi preview --policy-pack policy` (and in PR CI)."""

from pulumi_policy import PolicyPack
from rules import ENFORCEMENT, POLICIES

PolicyPack(name="audit-x", enforcement_level=ENFORCEMENT, policies=POLICIES)
