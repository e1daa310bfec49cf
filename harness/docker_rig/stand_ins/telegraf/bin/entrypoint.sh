#!/bin/sh
# As Telegraf's image: the command runs as given (`telegraf --config ...`), as the container's user.
exec "$@"
