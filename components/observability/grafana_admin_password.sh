#!/bin/sh
# The Grafana admin password job (components/observability/grafana.py), run before the server.
# Grafana applies GF_SECURITY_ADMIN_PASSWORD__FILE only when it creates its database; this job
# writes that file on the data volume for a first start and, once the database exists, changes
# the password in it with Grafana's CLI, while the server keeps running.
# Environment: NEW_PASSWORD_FILE (the uploaded secret; never on a command line), PASSWORD_FILE
# (where the server reads it), GF_PATHS_DATA (the data volume).
set -eu
umask 077
cp "$NEW_PASSWORD_FILE" "$PASSWORD_FILE.new"
mv "$PASSWORD_FILE.new" "$PASSWORD_FILE"
if [ -f "$GF_PATHS_DATA/grafana.db" ]; then
  grafana cli --homepath /usr/share/grafana --config /etc/grafana/grafana.ini \
    admin reset-admin-password --password-from-stdin < "$PASSWORD_FILE"
  echo "admin password changed in the running Grafana's database"
fi
echo "admin password file written"
