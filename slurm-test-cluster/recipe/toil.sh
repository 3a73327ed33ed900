#!/bin/bash
# Toil (toil-cwl-runner, from PyPI, pinned in toil-requirements.txt) in its own venv /opt/toil on the
# cluster root, so every node has it: CWL workflows whose steps run as their own Slurm jobs (docs/slurm.md).
# Its own venv because toil[cwl] pins its own cwltool: Debian's /usr/bin/cwltool stays as it is.
#   toil.sh download OUT   on the host: pip in the chroot fails TLS to PyPI, the host's pip does not
#   toil.sh install OUT    into OUT/root, from OUT/wheels only (--no-index)
set -euo pipefail
RECIPE=$(cd "$(dirname "$0")" && pwd)
OUT=$2
PY=cp313   # trixie's Python
case $1 in
download)
    pip=(python3 -m pip); "${pip[@]}" --version >/dev/null 2>&1 || pip=(pip3)
    mkdir -p "$OUT/wheels"
    "${pip[@]}" download -q --disable-pip-version-check -d "$OUT/wheels" --only-binary=:all: --no-deps \
        --python-version "${PY#cp}" --implementation cp --abi "$PY" --abi abi3 --abi none \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -r "$RECIPE/toil-requirements.txt" pip==25.3
    ;;
install)
    R=$OUT/root
    py=$(chroot "$R" python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
    if [ "$py" != "$PY" ]; then  # the pinned wheels are for trixie's Python; other suites go without Toil
        echo "no Toil: this root's Python is $py, toil-requirements.txt is for $PY"; rm -rf "$OUT/wheels"; exit 0
    fi
    mkdir -p "$R/tmp/wheels"; cp "$OUT"/wheels/*.whl "$R/tmp/wheels/"
    cp "$RECIPE/toil-requirements.txt" "$R/tmp/wheels/"
    chroot "$R" python3 -m venv --without-pip /opt/toil
    # pip runs from its wheel: the venv needs no pip of its own.
    # env -i: none of the host's PIP_* settings (its index, its find-links) reaches the install
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$R" sh -c 'cd /tmp/wheels && set -- pip-*.whl &&
        /opt/toil/bin/python "$1/pip" install -q --no-index --disable-pip-version-check --no-cache-dir \
        --find-links . -r toil-requirements.txt'
    for b in toil toil-cwl-runner _toil_worker; do ln -sf "/opt/toil/bin/$b" "$R/usr/local/bin/$b"; done
    rm -rf "$R/tmp/wheels" "$OUT/wheels"
    chroot "$R" toil-cwl-runner --version
    ;;
*) echo "usage: $0 download|install OUT" >&2; exit 2 ;;
esac
