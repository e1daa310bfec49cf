#!/bin/sh
# Grafana applies GF_SECURITY_ADMIN_PASSWORD only when it creates its database; afterwards the
# admin password is changed with its CLI, against the data volume (components/observability/grafana.py).
# Environment: PASSWORD_FILE (the uploaded secret; never on a command line).
set -eu
grafana cli --homepath /usr/share/grafana --config /etc/grafana/grafana.ini \
  admin reset-admin-password --password-from-stdin < "$PASSWORD_FILE"
