#!/bin/sh
# The PostgreSQL password job (components/data/postgres.py). Runs as root in the postgres image;
# reads the new password from its secret file, never from a command line or the environment.
# Exits non-zero, changing nothing, when the database exists but the server does not answer:
# the file and the role must never disagree.
# Environment: PGDATA, PGHOST (the socket directory), POSTGRES_USER, POSTGRES_UID,
# PASSWORD_FILE (what the server and its probe read), NEW_PASSWORD_FILE (the uploaded secret).
set -eu
umask 077
if [ -f "$PGDATA/PG_VERSION" ]; then
  pg_isready --host="$PGHOST" --quiet || {
    echo "the database exists but the server does not answer on $PGHOST: password not changed" >&2
    exit 1
  }
  psql --host="$PGHOST" --username="$POSTGRES_USER" --dbname=postgres --no-password --quiet -v ON_ERROR_STOP=1 <<'SQL'
\set role `printenv POSTGRES_USER`
\set password `cat "$NEW_PASSWORD_FILE"`
ALTER ROLE :"role" PASSWORD :'password';
SQL
  echo "password of role $POSTGRES_USER changed in the running server"
fi
cp "$NEW_PASSWORD_FILE" "$PASSWORD_FILE.new"
chown "$POSTGRES_UID:$POSTGRES_UID" "$PASSWORD_FILE.new"
mv "$PASSWORD_FILE.new" "$PASSWORD_FILE"
echo "password file written"
