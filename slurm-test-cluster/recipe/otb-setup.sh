#!/bin/sh
# Inside the OTB image: the paths the otbtf image has, pointing at Debian's OTB.
set -e
mkdir -p /opt/otbtf/bin
for f in /usr/bin/otbcli_*; do
    printf '#!/bin/sh\nexec %s "$@"\n' "$f" > "/opt/otbtf/bin/${f##*/}"
    chmod 755 "/opt/otbtf/bin/${f##*/}"
done
ln -sf python3 /usr/bin/python
rm -rf /var/cache/apt/* /var/lib/apt/lists/*
rm -f /tmp/otb-setup.sh
