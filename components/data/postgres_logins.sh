#!/bin/sh
# The app's PostgreSQL roles (components/data/postgres.py), kept in the running server over the
# local socket as the bootstrap superuser. The owner role (OWNER_ROLE) owns the app's database and
# everything in it; it cannot log in and is no superuser: no CREATEROLE, no REPLICATION, no
# BYPASSRLS, no membership in pg_read_server_files, pg_write_server_files or
# pg_execute_server_program, so an app session cannot read the server's files (pgBackRest's key),
# run programs or change the server's settings (archive_command). CREATEDB is kept: the backup
# runner's restore drill and staging's seed create and drop databases of their own as the app's
# login. The two logins are members of the owner role and act as it (SET role), so what the app
# creates is owned by the owner, whichever login created it. Consumers use one login at a time; a
# rotation changes the other one's password only, so no running consumer ever holds a password
# the server refuses.
# What the bootstrap superuser owned in the app's database before the owner role existed (a stack
# deployed when the logins acted as it) is handed to the owner role, once; extensions' members
# stay with the extension.
# Reads the passwords from their secret files, never from a command line or the environment.
# Environment: PGHOST (the socket directory), POSTGRES_USER (the bootstrap superuser), POSTGRES_DB
# (the app's database), OWNER_ROLE, LOGINS (the login role names, space-separated), SECRETS_DIR
# (one file per login, named after it).
set -eu
pg_isready --host="$PGHOST" --quiet || {
  echo "the server does not answer on $PGHOST: logins not changed" >&2
  exit 1
}
psql --host="$PGHOST" --username="$POSTGRES_USER" --dbname=postgres --no-password --quiet -v ON_ERROR_STOP=1 <<'SQL'
\set owner `printenv OWNER_ROLE`
\set database `printenv POSTGRES_DB`
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner') AS missing \gset
\if :missing
CREATE ROLE :"owner" NOLOGIN;
\endif
ALTER ROLE :"owner" WITH NOLOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS CREATEDB;
ALTER DATABASE :"database" OWNER TO :"owner";
SQL
psql --host="$PGHOST" --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --no-password --quiet -v ON_ERROR_STOP=1 <<'SQL'
\set owner `printenv OWNER_ROLE`
\set bootstrap `printenv POSTGRES_USER`
-- Read inside the DO block, which psql does not interpolate.
SET audit_x.owner = :'owner';
SET audit_x.bootstrap = :'bootstrap';
DO $$
DECLARE
  owner text := current_setting('audit_x.owner');
  bootstrap oid := (SELECT oid FROM pg_roles WHERE rolname = current_setting('audit_x.bootstrap'));
  item record;
BEGIN
  FOR item IN
    SELECT n.nspname FROM pg_namespace n
    WHERE n.nspowner = bootstrap AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', item.nspname, owner);
  END LOOP;
  -- Tables first: a table's ALTER OWNER takes its serial and identity sequences with it.
  FOR item IN
    SELECT c.oid::regclass AS name, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relowner = bootstrap AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
        AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
    ORDER BY c.relkind = 'S'
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I',
      CASE item.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE'
        WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, item.name, owner);
  END LOOP;
  FOR item IN
    SELECT p.oid::regprocedure AS name, p.prokind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.proowner = bootstrap AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I',
      CASE item.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, item.name, owner);
  END LOOP;
  FOR item IN
    SELECT t.oid::regtype AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typowner = bootstrap AND t.typtype IN ('e', 'd', 'r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO %I', item.name, owner);
  END LOOP;
END
$$;
SQL
for login in $LOGINS; do
  LOGIN="$login" psql --host="$PGHOST" --username="$POSTGRES_USER" --dbname=postgres --no-password --quiet \
    -v ON_ERROR_STOP=1 <<'SQL'
\set owner `printenv OWNER_ROLE`
\set bootstrap `printenv POSTGRES_USER`
\set login `printenv LOGIN`
\set password `cat "$SECRETS_DIR/$LOGIN"`
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login') AS missing \gset
\if :missing
CREATE ROLE :"login" LOGIN;
\endif
-- A login made before the owner role existed was a member of the bootstrap superuser: no more.
SELECT pg_has_role(:'login', :'bootstrap', 'MEMBER') AS in_bootstrap \gset
\if :in_bootstrap
REVOKE :"bootstrap" FROM :"login";
\endif
GRANT :"owner" TO :"login";
ALTER ROLE :"login" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'password';
ALTER ROLE :"login" SET role = :'owner';
SQL
  echo "login $login ready"
done
