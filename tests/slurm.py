"""A single-node SLURM on 127.0.0.1 for the tests: munged, slurmctld and slurmd with a generated slurm.conf.

No cgroups (``proctrack/linuxproc``, ``task/none``) and no accounting
database; ``SlurmdParameters=config_overrides`` lets the one node offer more
CPUs than this machine has, so a driver job and its worker jobs fit on 2 cores.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")
#: The daemons live in sbin, which a user's PATH may leave out.
PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def why_not() -> str | None:
    """Why SLURM cannot be started here, in one line; None when it can."""
    missing = [command for command in COMMANDS if shutil.which(command, path=PATH) is None]
    if missing:
        return (
            f"SLURM is not installed (no {', '.join(missing)}): `make test` installs Debian's slurm-wlm "
            "and munge with apt-get, as root or through sudo"
        )
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs: run the SLURM tests as root"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(folder: Path, node: str) -> str:
    return f"""\
ClusterName=palette
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.sock
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1
MinJobAge=600
KillWait=5
NodeName={node} NodeAddr=127.0.0.1 CPUs=8 RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def single_node_slurm(folder: Path):
    """Start munged, slurmctld and slurmd; yield the environment that reaches them (``SLURM_CONF``).

    Raises RuntimeError with one line (which daemon, its log's last lines)
    when one does not start; stops every daemon and cancels every job on exit.
    """
    folder = Path(folder)
    for name in ("state", "spool"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    node = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(_config(folder, node))
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    env = dict(os.environ, SLURM_CONF=str(conf), PATH=PATH)
    daemons: list[subprocess.Popen] = []
    munged = [f"--socket={folder}/munge.sock", f"--key-file={key}", f"--pid-file={folder}/munged.pid"]
    munged += [f"--log-file={folder}/munged.log", f"--seed-file={folder}/munged.seed"]
    try:
        started = subprocess.run(["munged", "--force", *munged], capture_output=True, text=True, env=env)
        if started.returncode != 0:
            raise RuntimeError(
                f"munged did not start: {started.stderr.strip() or _tail(folder / 'munged.log')}"
            )
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "env": env}
        daemons.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], **quiet))
        daemons.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", node], **quiet))
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            for daemon, log in zip(daemons, ("slurmctld.log", "slurmd.log")):
                if daemon.poll() is not None:
                    raise RuntimeError(f"{daemon.args[0]} exited: {_tail(folder / log)}")
            info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
            state = info.stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(
                f"the SLURM node is {state or 'not known'} after 60 s: {_tail(folder / 'slurmctld.log')}"
            )
        yield env
    finally:
        subprocess.run(["scancel", "--full", "--partition", "debug"], env=env, capture_output=True)
        for daemon in reversed(daemons):
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        subprocess.run(["munged", "--stop", f"--socket={folder}/munge.sock"], capture_output=True, env=env)


def jobs(env: dict, name: str | None = None) -> dict[int, str]:
    """``{job id: state}`` of the jobs slurmctld knows (finished ones too, for ``MinJobAge``), by job name."""
    shown = subprocess.run(["scontrol", "show", "jobs", "-o"], capture_output=True, text=True, env=env).stdout
    found = {}
    for line in shown.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "JobId" in fields and (name is None or fields.get("JobName") == name):
            found[int(fields["JobId"])] = fields.get("JobState", "")
    return found
