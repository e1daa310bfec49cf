#!/bin/sh
# The Debian packages the tests need: installed when run as root, otherwise named on one line.
# Used by `make test` (and so by .ci/run): a newcomer's `make test` never fails on the first
# missing one.
set -eu
missing=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v runuser >/dev/null 2>&1 || missing="$missing util-linux"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v shellcheck >/dev/null 2>&1 || missing="$missing shellcheck"
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
command -v pgbackrest >/dev/null 2>&1 || missing="$missing pgbackrest"
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing="$missing nginx-light"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
# The Docker rig (harness/docker_rig): mmdebstrap builds its root filesystem and base image;
# unshare, nsenter and pivot_root (util-linux) start it in a mount namespace of its own.
command -v mmdebstrap >/dev/null 2>&1 || missing="$missing mmdebstrap"
command -v pivot_root >/dev/null 2>&1 || missing="$missing util-linux"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
[ -n "$missing" ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "the tests need these Debian packages; as root run: apt-get install$missing" >&2
  exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq --no-install-recommends $missing >/dev/null
