#!/bin/sh
# Starts the rig's dockerd inside the trixie root filesystem ROOT, with all its state in STATE.
# Run under `unshare --mount --propagation private` (harness/docker_rig/engine.py): every mount
# below, and every mount dockerd makes, lives in that private namespace and is gone when its last
# process ends. pivot_root rather than chroot: runc pivots its containers' roots, which fails
# under a chroot. The script ends by exec'ing dockerd, so its pid is dockerd's.
set -eu
root=$1
state=$2
pool=$3
cgroup_parent=$4
mount --bind "$root" "$root"
# The root filesystem is shared by every rig of this machine (a cache): nothing writes into it.
mount -o remount,bind,ro "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mkdir "$root/run/rig"
mount --bind "$state" "$root/run/rig"
cd "$root"
mkdir run/rig/oldroot
pivot_root . run/rig/oldroot
cd /
umount -l /run/rig/oldroot
rmdir /run/rig/oldroot
exec /usr/sbin/dockerd \
  --data-root /run/rig/data \
  --exec-root /run/rig/exec \
  --host unix:///run/rig/docker.sock \
  --pidfile /run/rig/dockerd.pid \
  --iptables=false --ip6tables=false \
  --bridge=none \
  --default-address-pool "base=$pool,size=24" \
  --cgroup-parent "$cgroup_parent" \
  --storage-driver=overlay2
