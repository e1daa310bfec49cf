#!/bin/sh
# The Redis password jobs (components/data/redis.py). Redis's default user has two passwords,
# used in turn: consumers hold one; a rotation changes the other.
# - The password job, before the server and the app: given both slots' files, it sets both
#   passwords, so the app roles still on the old one keep working while the new ones start.
# - The retire job, after every app role and the edge run on the new one: given only the active
#   slot's file, it sets that password alone, so the old one (a leaked one, say) is refused from
#   then on, and one rotation is enough to lock it out.
# Either writes the users file the server includes (for its next start) and, when the server is
# running, sets the same passwords in it live (ACL SETUSER ... resetpass), logged in with one that
# is still valid. The passwords are read from their secret files and written with printf, a shell
# builtin: they never appear on a command line.
# Environment: SECRETS_DIR (password-a and/or password-b), USERS_FILE (on the credentials volume),
# REDIS_HOST, REDIS_PORT, REDIS_UID.
set -eu
umask 077
passwords=""
for slot in a b; do
  [ -r "$SECRETS_DIR/password-$slot" ] && passwords="$passwords $slot"
done
[ -n "$passwords" ] || { echo "no password file in $SECRETS_DIR: nothing changed" >&2; exit 1; }
# `>p1 >p2`, the passwords as ACL rules; built with printf, never a command's argument.
rules=""
for slot in $passwords; do
  rules="$rules >$(cat "$SECRETS_DIR/password-$slot")"
done
printf 'user default on%s ~* &* +@all\n' "$rules" > "$USERS_FILE.new"
chown "$REDIS_UID:$REDIS_UID" "$USERS_FILE.new"

cli() {
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --no-auth-warning "$@"
}
if cli ping 2>&1 | grep -q "Could not connect"; then
  echo "no server running yet: its first start reads the users file"
else
  # Logged in with a password of the files that the server accepts now (the retire job's active
  # one was set by the password job before the app moved to it).
  applied=""
  for slot in $passwords; do
    password=$(cat "$SECRETS_DIR/password-$slot")
    if [ "$(REDISCLI_AUTH="$password" cli ping 2>/dev/null)" = "PONG" ]; then
      reply=$(printf 'ACL SETUSER default resetpass%s\n' "$rules" | REDISCLI_AUTH="$password" cli)
      [ "$reply" = "OK" ] || { echo "ACL SETUSER failed: $reply" >&2; exit 1; }
      applied=yes
      break
    fi
  done
  if [ -z "$applied" ]; then
    echo "the running server accepts none of the given passwords: nothing changed" >&2
    rm -f "$USERS_FILE.new"
    exit 1
  fi
  echo "passwords set in the running server: slots$passwords"
fi
mv "$USERS_FILE.new" "$USERS_FILE"
echo "users file written: slots$passwords"
