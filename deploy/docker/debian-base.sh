#!/bin/sh
# Makes the image debian:bookworm-slim from Debian's archive, for a Docker that reaches no image registry
# (every image of this recipe starts FROM it). Needs root and debootstrap (apt-get install debootstrap).
#   sudo deploy/docker/debian-base.sh [MIRROR] [EXTRA-CA.crt ...]
# MIRROR defaults to http://deb.debian.org/debian (use the one in your /etc/apt/sources.list*). An EXTRA-CA
# is a certificate authority your network's HTTPS proxy signs with: it is trusted inside the images too.
set -eu
mirror=${1:-http://deb.debian.org/debian}
[ $# -gt 0 ] && shift
security=$(printf '%s' "$mirror" | sed 's#/debian/*$#/debian-security#')
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
changes=""
if [ $# -gt 0 ]; then
  install -d "$rootfs/usr/local/share/ca-certificates"
  for ca in "$@"; do install -m 0644 "$ca" "$rootfs/usr/local/share/ca-certificates/$(basename "$ca" .crt).crt"; done
  changes="ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"   # pip's own bundle would not have them
fi
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" --numeric-owner -c . | docker import ${changes:+--change "$changes"} --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - debian:bookworm-slim
docker run --rm debian:bookworm-slim cat /etc/debian_version
