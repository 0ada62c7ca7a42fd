#!/usr/bin/env bash
# Installs, with apt, what skiff needs on the host and is missing:
# containerd, runc, the CNI plugins and nftables. Does nothing when all are
# present, so `make run` and `make test` can call it every time.
# containerd brings ctr (image import). The node e2e tests also need
# busybox-static, but only as a .deb: they fetch it with `apt-get download`
# (running `apt-get update` first if apt has no lists) and unpack it with
# dpkg-deb, installing nothing.
set -euo pipefail
want=(containerd runc containernetworking-plugins nftables iproute2)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || apt-get update
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
