# Sourced by .ci/services.sh: installs Slurm from Debian (slurm-wlm, munge) if missing and
# starts a single-node cluster (munged, slurmctld, slurmd) for the server's Slurm job tests.
# Idempotent: a running cluster is left alone.
if ! command -v sbatch >/dev/null || ! command -v slurmd >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
if ! scontrol ping 2>/dev/null | grep -q UP; then
  HOST=$(hostname -s)
  # slurmctld and slurmd must resolve the node name.
  getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts
  CPUS=$(nproc)
  MEM=$(awk '/MemTotal/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=genecompass-ci
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  [ -f /etc/munge/munge.key ] || /usr/sbin/mungekey --create >/dev/null 2>&1 || true
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
  pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
  pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
  for _ in $(seq 1 30); do
    sinfo -h -o '%T' 2>/dev/null | grep -qE 'idle|mixed' && break
    sleep 1
  done
fi
sinfo -h -o 'Slurm partition %P: %D node(s) %T' || echo "warning: Slurm did not come up (see /var/log/slurm)" >&2
