#!/usr/bin/env bash
# The Debian packages of the single-node SLURM that the `slurm` tests start (tests/slurm/conftest.py):
# slurmctld, slurmd, slurm-client and munge, installed only when missing. The daemons are started by
# the tests themselves, as their own processes, and stopped by them.
set -euo pipefail
missing=()
for pair in slurmctld:slurmctld slurmd:slurmd slurm-client:sbatch munge:munged; do
    program="${pair#*:}"
    command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || missing+=("${pair%%:*}")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "SLURM packages present"
    exit 0
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
