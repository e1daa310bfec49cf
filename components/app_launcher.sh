#!/bin/sh
# The app's launcher (components/app.py): the first thing every app container runs. The app
# expects its secrets as environment variables; Docker would show those to anyone who can read
# its API (`docker inspect`). So the container is given only file paths, and this launcher, inside
# the container, reads the files, exports the variables to the process it starts, and execs it:
# signals reach the app directly and its exit code is the container's.
#
#   AUDIT_X_SECRETS        names N: N is exported with the content of the file named by N_FILE
#   AUDIT_X_URL_PASSWORDS  pairs URL=PASSWORD: the value of PASSWORD is put into URL's user info
#                          (postgres://user@host/db -> postgres://user:<password>@host/db); the
#                          passwords are alphanumeric, so they need no escaping in a URL
#
# Refuses to start, naming what is missing, when a variable or a file is missing.
set -eu
die() {
  echo "audit-x launcher: $*; not starting" >&2
  exit 78
}
for name in ${AUDIT_X_SECRETS:-}; do
  file=$(printenv "${name}_FILE") || die "${name}_FILE is not set"
  [ -r "$file" ] || die "$file (for $name) is missing or not readable"
  value=$(cat "$file")
  export "$name=$value"
done
for pair in ${AUDIT_X_URL_PASSWORDS:-}; do
  url_name=${pair%%=*}
  password_name=${pair#*=}
  url=$(printenv "$url_name") || die "$url_name is not set"
  password=$(printenv "$password_name") || die "$password_name is not set"
  scheme=${url%%://*}
  rest=${url#*://}
  case "$rest" in
    *@*) user=${rest%%@*}; host=${rest#*@} ;;
    *) user=""; host=$rest ;;
  esac
  export "$url_name=$scheme://$user:$password@$host"
done
[ "$#" -gt 0 ] || die "no command given"
exec "$@"
