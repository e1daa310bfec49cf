#!/bin/sh
# Sets, on a Redpanda cluster that already exists, the cluster properties a new cluster reads
# from its bootstrap file (components/data/redpanda.py): the same file is uploaded to this job,
# one `name: value` a line, the value in JSON. Idempotent: setting a value it has changes nothing.
# Environment: PROPERTIES_FILE (the bootstrap file), ADMIN_HOSTS (the broker's admin API).
set -eu
while IFS= read -r line; do
  [ -n "$line" ] || continue
  name=${line%%:*}
  value=${line#*: }
  rpk cluster config set "$name" "$value" -X admin.hosts="$ADMIN_HOSTS"
done < "$PROPERTIES_FILE"
