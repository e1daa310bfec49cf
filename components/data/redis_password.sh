#!/bin/sh
# The Redis password job (components/data/redis.py), run before the server. Redis's default user
# has two passwords, used in turn: consumers hold one; a rotation changes the other only.
# The job writes the users file the server includes (for its next start) and, when the server is
# running, sets the same two passwords in it live (ACL SETUSER), logged in with the one that is
# still valid. The passwords are read from their secret files and written with printf, a shell
# builtin: they never appear on a command line.
# Environment: SECRETS_DIR (password-a, password-b), USERS_FILE (on the credentials volume),
# REDIS_HOST, REDIS_PORT, REDIS_UID.
set -eu
umask 077
a=$(cat "$SECRETS_DIR/password-a")
b=$(cat "$SECRETS_DIR/password-b")
printf 'user default on >%s >%s ~* &* +@all\n' "$a" "$b" > "$USERS_FILE.new"
chown "$REDIS_UID:$REDIS_UID" "$USERS_FILE.new"

cli() {
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --no-auth-warning "$@"
}
if cli ping 2>&1 | grep -q "Could not connect"; then
  echo "no server running yet: its first start reads the users file"
else
  applied=""
  for password in "$a" "$b"; do
    if [ "$(REDISCLI_AUTH="$password" cli ping 2>/dev/null)" = "PONG" ]; then
      reply=$(printf 'ACL SETUSER default resetpass >%s >%s\n' "$a" "$b" | REDISCLI_AUTH="$password" cli)
      [ "$reply" = "OK" ] || { echo "ACL SETUSER failed: $reply" >&2; exit 1; }
      applied=yes
      break
    fi
  done
  if [ -z "$applied" ]; then
    echo "the running server accepts neither password: nothing changed" >&2
    rm -f "$USERS_FILE.new"
    exit 1
  fi
  echo "passwords set in the running server"
fi
mv "$USERS_FILE.new" "$USERS_FILE"
echo "users file written"
