#!/bin/bash
# Runs once in the cluster root at build time (chroot, as root).
set -euo pipefail
# Ordinary users, the same uids on every node; homes live on the shared /home.
groupadd -g 2000 hpgc
for u in alice:2001 bob:2002; do
    useradd -u "${u#*:}" -g hpgc -d "/home/${u%:*}" -M -s /bin/bash "${u%:*}"
    # With UsePAM no, a locked password ("!") would refuse key logins too.
    usermod -p '*' "${u%:*}"
done
# cwltool --singularity calls `singularity`.
command -v singularity >/dev/null || ln -s apptainer /usr/bin/singularity
# Nothing here may start at install time or at boot: the node boot script starts what it needs.
rm -f /etc/ssh/ssh_host_*key* /etc/munge/munge.key
mkdir -p /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
chown -R slurm:slurm /var/lib/slurm /var/log/slurm
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/cluster-setup.sh
