#!/bin/sh
# As Redpanda's image: the command is rpk's (`redpanda start ...` -> `rpk redpanda start ...`).
exec rpk "$@"
