#!/bin/sh
# As Traefik's image: flags alone are traefik's; any other command runs as given (the routes job's sh).
case "${1:-}" in
  -*) set -- traefik "$@" ;;
esac
exec "$@"
