#!/usr/bin/env bash
# The Debian packages orchestrator and its tests use. Idempotent; installs only what is missing.
set -euo pipefail
packages=(
  squashfs-tools   # mksquashfs / unsquashfs: squashfs images
  e2fsprogs        # mkfs.ext3 -d, debugfs: ext3 images
  debootstrap      # Bootstrap: debootstrap (as root, ORCHESTRATOR_DEBIAN_BOOTSTRAP=debootstrap)
  mmdebstrap       # Bootstrap: debootstrap (the default; the only one in a user namespace)
  fakechroot       # mmdebstrap --mode=fakechroot: Debian bootstraps in a single-id namespace
  fakeroot         # the same (mmdebstrap runs under fakechroot fakeroot)
  uidmap           # newuidmap/newgidmap: subuid user namespaces
  squashfuse       # non-root exec of squashfs images through FUSE
  fuse2fs          # non-root exec of ext3 images through FUSE
  util-linux       # losetup, setpriv, unshare, mount, nsenter (instance://NAME)
  uidmap           # newuidmap/newgidmap: builds without root in subuid mode (unshare --map-users)
  passwd           # useradd/userdel: the rootless tests make their users
  coreutils        # env --default-signal (instance start), and the basics
  bash             # --env-file is read by bash
  docker-registry  # a real OCI registry for the tests (distribution v2)
  apache2-utils    # htpasswd for the registry auth tests
  busybox-static   # test images are made from it
  graphviz         # dot, to check `graph --format dot`
  build-essential  # the starter and the native addon
  attr             # getfattr/setfattr: the tests check xattrs survive exports
  libdeflate-dev   # native/squashfs: gzip (zlib streams by libdeflate, linked statically)
  liblzma-dev      # native/squashfs: xz
  libzstd-dev      # native/squashfs: zstd
  liblz4-dev       # native/squashfs: lz4
  libssl-dev       # native/squashfs: sha256 (libcrypto)
  squashfs-tools-ng  # sqfsdiff: the squashfs writer tests compare images
  skopeo           # the push tests read pushed manifests back with another client
  umoci            # the push tests unpack pushed images with another tool
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
