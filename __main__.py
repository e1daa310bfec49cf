"""audit-x: one environment of the audit_x Rails app, from this stack's config alone."""

import pulumi

from components.environment import AuditXEnvironment
from components.lib.context import EnvironmentContext
from components.settings import load_settings, read_pulumi_config

# Validated up front: a bad or missing value stops here, before any resource is declared.
raw_config, secret_keys = read_pulumi_config()
settings = load_settings(raw_config, secret_keys)
environment = AuditXEnvironment(EnvironmentContext.from_settings(settings).name(), settings)

for name, value in environment.outputs().items():
    pulumi.export(name, value)
