"""The configuration files of the Slurm test cluster (tests/slurm_cluster.py): slurm.conf for
one node on 127.0.0.1 with everything stateful in the cluster's folder, and gres.conf with two
fake GPUs. The settings a test depends on say why they are there.
"""

from __future__ import annotations

import socket
from pathlib import Path

NODE = "jqnode"  # slurmd -N: the node's name need not be the machine's, so no DNS is involved
PARTITION = "jq"


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 now (bound together, so never the same one)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def slurm_conf(root: Path, ctld_port: int, slurmd_port: int, cpus: int) -> str:
    """slurm.conf for one node on 127.0.0.1, with everything stateful under `root`."""
    return f"""\
ClusterName=journalq
# "localhost" is accepted as this host whatever the machine's name: no DNS, no /etc/hosts.
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
# Our own munged (socket in the cluster's folder), not the machine's /run/munge. Credentials
# live 5 s, not 120: a requeued job waits that long (+1 s) before it may start again.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / "munge" / "munge.socket"},cred_expire=5
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
# Debian's default mail program is absent; without this slurmctld logs an error.
MailProg=/bin/true
# Not /etc/slurm's SPANK plugins.
PlugStackConfig={root / "plugstack.conf"}
# No cgroups (a container may have none to give) and no accounting (no slurmdbd, so no
# sacct: `scontrol show job` stands in while MinJobAge keeps finished jobs, 10 min).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
# cons_tres allocates GPUs per task, so --gres=gpu:1 sets CUDA_VISIBLE_DEVICES.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# The main scheduling pass every second, not every 60 s: a requeued task, whose begin time
# has passed, is started by that pass, not by an event.
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
MpiDefault=none
SwitchType=switch/none
# The node's CPUs and layout as written here, whatever the hardware says (else: drained).
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=2
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName={NODE} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} Gres=gpu:2 State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


# Two fake GPUs: Slurm only needs a device file per GPU to hand out and to name in
# CUDA_VISIBLE_DEVICES (0 and 1, by their order here).
GRES_CONF = f"""\
NodeName={NODE} Name=gpu File=/dev/null
NodeName={NODE} Name=gpu File=/dev/zero
"""
