#!/bin/bash
# Build the cluster's root file system and its container images into OUT:
#   OUT/root/                      Debian SUITE (trixie by default): Slurm, MariaDB, munge, sshd, Apptainer, cwltool
#   OUT/images/otbtf_4.1.0-cpu.sif Debian bookworm: OTB (otbcli_*), GDAL, numpy
#   OUT/images/python_3.11-slim.sif Debian bookworm: Python 3.11 + numpy
# SUITE (HPGC_CLUSTER_SUITE) picks the Slurm: bookworm 22.05, trixie 24.11, sid 26.05. bookworm's libc is
# too old for any Apptainer Debian has, so its root has none and no images are built for it.
# Every file in this directory is hashed into the cache key (with the suite): edit one and `up` rebuilds.
set -euo pipefail
OUT=$1
SUITE=${HPGC_CLUSTER_SUITE:-trixie}
case $SUITE in bookworm|trixie|sid) ;; *) echo "unknown suite $SUITE (bookworm, trixie or sid)" >&2; exit 2 ;; esac
RECIPE=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

# Use the mirror the host already uses (only Debian's registry is reachable).
mirror() {
    [ -n "${HPGC_DEBIAN_MIRROR:-}" ] && { echo "$HPGC_DEBIAN_MIRROR"; return; }
    local m
    m=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
          /etc/apt/sources.list | grep -v security | grep -oE 'https?://[^ ]+/debian/?' | head -1)
    echo "${m%/}"
}
MIRROR=$(mirror); [ -n "$MIRROR" ] || { echo "no Debian mirror found in /etc/apt" >&2; exit 1; }

# Docs, man pages and translations are half the size and never read here.
SLIM=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
      --dpkgopt='path-exclude=/usr/share/info/*')

mkdir -p "$OUT/images" "$OUT/debs"
rm -rf "$OUT/root" "$OUT/otb" "$OUT/python"

# Apptainer is in no stable suite: fetch it from sid with a private apt setup,
# leaving the host's /etc/apt alone. Its dependencies come from trixie.
fetch_apptainer() {
    local a=$OUT/apt-sid
    mkdir -p "$a/lists/partial" "$a/cache/archives/partial"
    echo "deb $MIRROR sid main" > "$a/sources.list"
    local o=(-o Dir::Etc::SourceList="$a/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$a/lists" -o Dir::Cache="$a/cache" -o Dir::State::status=/dev/null)
    apt-get "${o[@]}" -o Acquire::Check-Valid-Until=false -q update >/dev/null
    (cd "$OUT/debs" && rm -f apptainer_*.deb && apt-get "${o[@]}" -q download apptainer >/dev/null)
    ls "$OUT"/debs/apptainer_*.deb
}

CLUSTER_PKGS=slurmctld,slurmd,slurm-client,slurmdbd,munge,mariadb-server,openssh-server,openssh-client
CLUSTER_PKGS+=,python3,squashfs-tools,uidmap,ca-certificates,e2fsprogs,squashfuse,fuse2fs,fuse-overlayfs
CLUSTER_PKGS+=,fuse3,containernetworking-plugins,libseccomp2,libsqlite3-0,iproute2,procps,cwltool
CLUSTER_PKGS+=,less,iputils-ping,netcat-openbsd
# bookworm's cwltool imports pkg_resources without depending on python3-setuptools
[ "$SUITE" != bookworm ] || CLUSTER_PKGS+=,python3-setuptools

build_cluster_root() {
    local hooks=() deb
    if [ "$SUITE" != bookworm ]; then
        deb=$(fetch_apptainer)
        hooks=(--customize-hook="copy-in $deb /tmp"
               --customize-hook="chroot \"\$1\" apt-get install -y -q /tmp/$(basename "$deb")"
               --customize-hook="chroot \"\$1\" rm -f /tmp/$(basename "$deb")")
    fi
    # sid's Release file is valid for a week only: a mirror snapshot older than that is still sid
    [ "$SUITE" = sid ] && hooks+=(--aptopt='Acquire::Check-Valid-Until "false"')
    mmdebstrap --quiet --variant=apt --include="$CLUSTER_PKGS" "${SLIM[@]}" "${hooks[@]}" \
        --customize-hook="copy-in $RECIPE/cluster-setup.sh /tmp" \
        --customize-hook="chroot \"\$1\" bash /tmp/cluster-setup.sh" \
        "$SUITE" "$OUT/root" "$MIRROR"
}

# Apptainer keeps a sandbox's /.singularity.d when it builds a SIF from it.
RUNSCRIPT_HOOK="mkdir -p \"\$1/.singularity.d\" && install -m 755 $RECIPE/runscript \"\$1/.singularity.d/runscript\""

build_otb_root() {
    mmdebstrap --quiet --variant=essential "${SLIM[@]}" \
        --include=otb-bin,gdal-bin,python3-numpy,python3-gdal,python3-minimal \
        --customize-hook="copy-in $RECIPE/otb-setup.sh /tmp" \
        --customize-hook="$RUNSCRIPT_HOOK" \
        --customize-hook="chroot \"\$1\" sh /tmp/otb-setup.sh" \
        bookworm "$OUT/otb" "$MIRROR"
}

build_python_root() {
    # bookworm's Python is 3.11, as the name promises.
    mmdebstrap --quiet --variant=essential "${SLIM[@]}" --include=python3-minimal,python3-numpy \
        --customize-hook='chroot "$1" ln -sf python3 /usr/bin/python' \
        --customize-hook="$RUNSCRIPT_HOOK" \
        bookworm "$OUT/python" "$MIRROR"
}

# The three downloads and unpacks are independent: run them side by side.
pids=()
build_cluster_root > "$OUT/cluster-root.log" 2>&1 & pids+=($!)
if [ "$SUITE" = bookworm ]; then   # no Apptainer to build or run images with
    wait "${pids[0]}" || { tail -n 30 "$OUT/cluster-root.log" >&2; exit 1; }
    rm -rf "$OUT/apt-sid"; exit 0
fi
build_otb_root     > "$OUT/otb-root.log" 2>&1 & pids+=($!)
build_python_root  > "$OUT/python-root.log" 2>&1 & pids+=($!)
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [ $fail = 1 ]; then tail -n 30 "$OUT"/*-root.log >&2; exit 1; fi

# The SIFs are built by the cluster's own apptainer, in a chroot of the new root.
# Apptainer reads /proc/self/mountinfo to find its temp dir's mount, so the root and
# its /tmp must be mount points as seen from inside.
R=$OUT/root
mkdir -p "$R/build" "$OUT/tmp"
cleanup() { umount -R "$R" 2>/dev/null || true; }
trap cleanup EXIT
mount --bind "$R" "$R"
mount --bind "$OUT" "$R/build"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/tmp"
sif() { chroot "$R" env APPTAINER_TMPDIR=/build/tmp apptainer -s build --force "/build/images/$1" "/build/$2"; }
pids=()
sif otbtf_4.1.0-cpu.sif otb > "$OUT/sif-otb.log" 2>&1 & pids+=($!)
sif python_3.11-slim.sif python > "$OUT/sif-python.log" 2>&1 & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [ $fail = 1 ]; then tail -n 30 "$OUT"/sif-*.log >&2; exit 1; fi
cleanup; trap - EXIT
# cwltool names a cached `dockerPull: python:3.11-slim` python:3.11-slim.sif (3.1, 3.3)
# or python_3.11-slim.sif (cwl-utils 0.42): answer to both.
ln -sf python_3.11-slim.sif "$OUT/images/python:3.11-slim.sif"
rmdir "$R/build"
rm -rf "$OUT/otb" "$OUT/python" "$OUT/apt-sid" "$OUT/tmp"
