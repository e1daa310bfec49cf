#!/bin/sh
# As InfluxDB's image: `influxd` by default, with the first-start setup from DOCKER_INFLUXDB_INIT_*.
if [ "$#" -eq 0 ] || [ "$1" = "influxd" ]; then
  exec python3 /opt/stand-in/influxdb_stand_in.py
fi
exec "$@"
