#!/bin/sh
# The app's two PostgreSQL logins (components/data/postgres.py), created and given their
# passwords in the running server, over the local socket. Each login is a member of the owner
# role and acts as it (SET role), so what the app creates is owned by the owner, whichever login
# created it. Consumers use one login at a time; a rotation changes the other one's password
# only, so no running consumer ever holds a password the server refuses.
# Reads the passwords from their secret files, never from a command line or the environment.
# Environment: PGHOST (the socket directory), POSTGRES_USER (the owner role), LOGINS (the login
# role names, space-separated), SECRETS_DIR (one file per login, named after it).
set -eu
pg_isready --host="$PGHOST" --quiet || {
  echo "the server does not answer on $PGHOST: logins not changed" >&2
  exit 1
}
for login in $LOGINS; do
  LOGIN="$login" psql --host="$PGHOST" --username="$POSTGRES_USER" --dbname=postgres --no-password --quiet \
    -v ON_ERROR_STOP=1 <<'SQL'
\set owner `printenv POSTGRES_USER`
\set login `printenv LOGIN`
\set password `cat "$SECRETS_DIR/$LOGIN"`
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login') AS missing \gset
\if :missing
CREATE ROLE :"login" LOGIN IN ROLE :"owner";
\endif
ALTER ROLE :"login" WITH LOGIN PASSWORD :'password';
ALTER ROLE :"login" SET role = :'owner';
SQL
  echo "login $login ready"
done
