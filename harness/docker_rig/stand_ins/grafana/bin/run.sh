#!/bin/sh
# As Grafana's image: its /run.sh starts the server.
exec grafana server "$@"
