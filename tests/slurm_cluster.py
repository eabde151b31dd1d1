"""A throw-away single-node Slurm cluster for the `cluster` tests.

Everything lives in one folder (config, state, logs, the munge key and socket) and the
clients find it through `SLURM_CONF`, so nothing is written to /etc/slurm: a slurm.conf
there naming a controller that is not running makes every later `snakemake` call on the
machine wait ~10 s (the Slurm plugin runs `scontrol show config` when it loads).
The daemons run in the foreground as children of the test (there is no systemd), and
exactly those processes are stopped at the end, after every job has been cancelled and
every process of the jobs ended by PID: slurmd's proctrack/linuxproc follows a job's
processes by parentage, so one reparented to PID 1 (a Snakemake job step whose srun was
killed) escapes it; the cluster finds them by the job id and the cluster's SLURM_CONF
in their environment instead.
Written for Debian's Slurm 22.05 (`slurmctld slurmd slurm-client munge`).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scancel", "sinfo")
PACKAGES = "slurmctld slurmd slurm-client munge"
# The plugin polls job states with squeue (profiles/slurm), which forgets a job MinJobAge
# seconds after it ends; the plugin wants >= 120 s or it falls back to sacct.
MIN_JOB_AGE = 300
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL
JOB_FIELDS = ("id", "comment", "state", "reason", "cpus", "gpus", "start", "end")
SQUEUE_FORMAT = "JobID:|,Comment:|,State:|,Reason:|,NumCPUs:|,tres-per-job:|,StartTime:|,EndTime:|"


def _search_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _which(program: str) -> str:
    path = shutil.which(program, path=_search_path())
    if path is None:
        raise FileNotFoundError(f"{program} not found; install Debian's {PACKAGES}")
    return path


def missing_programs() -> list[str]:
    return [p for p in DAEMONS + CLIENTS if shutil.which(p, path=_search_path()) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_line(gpus: int, min_cpus: int) -> str:
    """This machine as a Slurm node (`slurmd -C`: its CPUs, cores, memory) with `gpus`
    GPUs and at least `min_cpus` CPUs: declaring more CPUs than the machine has lets a
    test show that GPUs, not CPUs, limit how many jobs run at once."""
    out = subprocess.run(
        [_which("slurmd"), "-C"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    node = dict(item.split("=", 1) for item in line.split())
    if int(node["CPUs"]) < min_cpus:
        node |= {
            "CPUs": min_cpus,
            "SocketsPerBoard": 1,
            "CoresPerSocket": min_cpus,
            "ThreadsPerCore": 1,
        }
    node |= {"Gres": f"gpu:{gpus}", "State": "UNKNOWN"}
    return " ".join(f"{key}={value}" for key, value in node.items())


def write_config(root: Path, gpus: int, min_cpus: int) -> Path:
    """slurm.conf and gres.conf for one node (this machine) in one partition, `test`."""
    user = getpass.getuser()
    for sub in ("state", "spool", "log", "munge", "dev"):
        (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    settings = {
        "ClusterName": "tlrepro-test",
        "SlurmctldHost": f"{socket.gethostname()}(127.0.0.1)",
        "SlurmctldPort": _free_port(),
        "SlurmdPort": _free_port(),
        "SlurmUser": user,
        "SlurmdUser": user,
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={root / 'munge' / 'munge.socket'}",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "SlurmctldLogFile": root / "log" / "slurmctld.log",
        "SlurmdLogFile": root / "log" / "slurmd.log",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/affinity",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core",
        "GresTypes": "gpu",
        "SlurmdParameters": "config_overrides",  # trust the node line, see node_line
        "MinJobAge": MIN_JOB_AGE,
        "KillWait": 5,  # SIGKILL a cancelled job 5 s after its SIGTERM (default 30)
        "ReturnToService": 2,
        "MpiDefault": "none",
        "SchedulerParameters": "sched_interval=1,bf_interval=1",
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines.append(node_line(gpus, min_cpus))
    lines.append("PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    # Count-only GPUs do not work: slurmd drops every GPU without a device file ("Removing
    # file-less GPU") and the node is drained (INVAL, "gres/gpu count reported lower than
    # configured"). Empty placeholder files do; no job opens them.
    for index in range(gpus):
        (root / "dev" / f"gpu{index}").touch()
    (root / "gres.conf").write_text(
        f"AutoDetect=off\nName=gpu File={root / 'dev' / 'gpu'}[0-{gpus - 1}]\n"
    )
    return conf


def write_srun_shim(root: Path, conf: Path) -> Path:
    """A folder whose `srun` finds this cluster's config. A real node reads it from
    /etc/slurm; here SLURM_CONF carries it, and the plugin's job step drops SLURM_*
    variables before it calls srun inside the job."""
    folder = root / "bin"
    folder.mkdir(exist_ok=True)
    shim = folder / "srun"
    shim.write_text(f'#!/bin/sh\nSLURM_CONF="{conf}" exec "{_which("srun")}" "$@"\n')
    shim.chmod(0o755)
    return folder


@dataclass
class SlurmCluster:
    """A running cluster: its folder, the environment its clients need, its daemons."""

    root: Path
    env: dict[str, str]
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, cmd: list[str], timeout: float = 30, check: bool = True):
        """A Slurm client command against this cluster, bounded in time."""
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stderr}")
        return result

    def jobs(self, states: str = "all") -> list[dict[str, str]]:
        """squeue's view, one dict of JOB_FIELDS per job; finished jobs stay MinJobAge s."""
        out = self.run(["squeue", "--noheader", f"--states={states}", "-O", SQUEUE_FORMAT])
        return [
            dict(zip(JOB_FIELDS, line.split("|")[: len(JOB_FIELDS)], strict=True))
            for line in out.stdout.splitlines()
        ]

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            dead = [name for name, proc in self.daemons.items() if proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                problem = f"{', '.join(dead)} exited" if dead else f"not within {timeout:.0f} s"
                raise RuntimeError(
                    f"Slurm test cluster: waiting for {what}: {problem}\n"
                    + "\n".join(f"--- {d}.log\n{self.log(d)[-3000:]}" for d in DAEMONS)
                )
            time.sleep(0.2)

    def start(self, name: str, args: list[str]) -> None:
        with open(self.root / "log" / f"{name}.out", "w") as out:
            self.daemons[name] = subprocess.Popen(
                [_which(name), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def job_processes(self) -> list[int]:
        """The processes of this cluster's jobs still alive, wherever they were reparented:
        those with a SLURM_JOB_ID and this cluster's SLURM_CONF in their environment."""
        conf = f"SLURM_CONF={self.env['SLURM_CONF']}".encode()
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                variables = environ.read_bytes().split(b"\0")
            except OSError:  # ended meanwhile
                continue
            if conf in variables and any(v.startswith(b"SLURM_JOB_ID=") for v in variables):
                found.append(int(environ.parent.name))
        return found

    def end_job_processes(self, timeout: float = 15) -> list[int]:
        """SIGKILL every process of this cluster's jobs (what a dead node does to them) and
        wait until they are gone; returns their PIDs."""
        ended = self.job_processes()
        for pid in ended:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while (alive := [p for p in ended if Path(f"/proc/{p}").exists()]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        if alive:
            raise RuntimeError(f"processes {alive} of the test's jobs survived SIGKILL")
        return ended

    def node(self) -> str:
        return self.run(["sinfo", "--noheader", "--format=%N"]).stdout.strip()

    def set_node(self, state: str) -> None:
        """`down` (its jobs end as NODE_FAIL) or `resume`, as an administrator would."""
        self.run(
            ["scontrol", "update", f"nodename={self.node()}", f"state={state}"]
            + (["reason=tlrepro-test"] if state == "down" else [])
        )

    def stop(self) -> None:
        """Cancel every job and wait for them to end, end any process of them left, then
        stop our daemons, newest first."""
        if "slurmctld" in self.daemons and self.daemons["slurmctld"].poll() is None:
            self.run(["scancel", "--user", getpass.getuser()], check=False)
            with contextlib.suppress(RuntimeError):
                self.wait_until(
                    lambda: not self.jobs("pending,running,completing,suspended"),
                    "every job to end",
                    timeout=30,
                )
        self.end_job_processes()
        for proc in reversed(self.daemons.values()):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)


@contextlib.contextmanager
def single_node_cluster(
    root: Path, gpus: int = 2, min_cpus: int = 1, timeout: float = 60
) -> Iterator[SlurmCluster]:
    """Bring up munged, slurmctld and slurmd on this machine; stop them on exit, even
    when the body fails."""
    munge_socket = root / "munge" / "munge.socket"
    if len(str(munge_socket)) > SOCKET_PATH_MAX:
        raise ValueError(f"{root} is too deep for a Unix socket path; use a shorter folder")
    conf = write_config(root, gpus, min_cpus)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("SLURM_")},
        "SLURM_CONF": str(conf),
        "PATH": os.pathsep.join([str(write_srun_shim(root, conf)), _search_path()]),
    }
    cluster = SlurmCluster(root, env)
    try:
        cluster.start(
            "munged",
            [
                "--foreground",
                "--force",
                f"--socket={munge_socket}",
                f"--key-file={key}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--pid-file={root / 'munge' / 'pid'}",
                f"--seed-file={root / 'munge' / 'seed'}",
            ],
        )
        cluster.wait_until(munge_socket.exists, "munged's socket", timeout)
        cluster.start("slurmctld", ["-D"])
        cluster.start("slurmd", ["-D"])
        cluster.wait_until(
            lambda: (
                cluster.run(
                    ["sinfo", "--noheader", "--format=%T"], timeout=10, check=False
                ).stdout.strip()
                == "idle"
            ),
            "an idle node",
            timeout,
        )
        yield cluster
    finally:
        cluster.stop()
