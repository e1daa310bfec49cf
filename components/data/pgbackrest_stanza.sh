#!/bin/sh
# PostgreSQL's pgBackRest job (components/data/postgres.py): creates the stanza in the repository
# (a no-op when it exists, as on every later run), then checks that a WAL switch reaches the
# repository, so archiving is known to work end to end before the update goes on.
# Environment: STANZA, CONFIG_FILE, SECRETS_DIR. Runs as the database's user, like the server.
set -eu
gosu postgres pgbackrest --config="$CONFIG_FILE" --config-include-path="$SECRETS_DIR" --stanza="$STANZA" stanza-create
gosu postgres pgbackrest --config="$CONFIG_FILE" --config-include-path="$SECRETS_DIR" --stanza="$STANZA" check
echo "pgBackRest stanza $STANZA: created, and a WAL segment reached the repository"
