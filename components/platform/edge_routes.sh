#!/bin/sh
# The edge's routes job (components/platform/edge.py): puts the rendered routes where Traefik's
# file provider watches them, in one rename, so Traefik never reads half a file. It runs once
# the web containers it names are healthy: the edge starts sending them requests only then.
# Environment: NEW_ROUTES_FILE (the uploaded routes), ROUTES_DIR (the shared volume).
set -eu
cp "$NEW_ROUTES_FILE" "$ROUTES_DIR/.routes.yml.new"
mv "$ROUTES_DIR/.routes.yml.new" "$ROUTES_DIR/routes.yml"
echo "routes written: $(grep -c 'url:' "$ROUTES_DIR/routes.yml") servers"
