#!/bin/sh
# As the official Redis image's entrypoint: `redis-server` started as root gets /data and then runs
# as the redis user (999); any other command (the password job's sh) runs as given.
set -e
if [ "${1:-}" = "redis-server" ] && [ "$(id -u)" = "0" ]; then
  find /data \! -user redis -exec chown redis:redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi
exec "$@"
