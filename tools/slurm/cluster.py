#!/usr/bin/env python3
"""A real single-node SLURM cluster on this machine, for tests and for trying the profile.

    python tools/slurm/cluster.py start  [--state-dir DIR]   # munged, slurmctld, slurmd; waits until idle
    python tools/slurm/cluster.py status [--state-dir DIR]
    python tools/slurm/cluster.py stop   [--state-dir DIR]   # cancels jobs, stops each daemon by its pid

Needs root and the Debian packages ``slurm-wlm munge libpmix-dev`` (``tools/setup.sh`` installs
them). Everything lives in the state directory (default ``/tmp/magtwin-slurm``): slurm.conf
written for this host's name, cores and memory, a fresh munge key, spool and state folders,
pid files and logs. No accounting database: the executor plugin must use
``--slurm-status-command squeue`` (``MinJobAge=3600`` keeps finished jobs visible to squeue and scontrol for an hour, also on a slow, loaded machine).

One thing lives outside the state directory: ``/etc/slurm/slurm.conf`` is made a symlink to the
state directory's slurm.conf while the cluster runs. Inside a job the Snakemake executor plugin
strips every ``SLURM_*`` variable (``SLURM_CONF`` included) before calling ``srun``, so the
nested ``srun`` only finds the configuration at its compiled-in default path. ``start`` refuses
to run when that path holds a real (not ours) configuration, and ``stop`` removes the symlink
only if it points into this state directory.

Standard library only, so that it runs with any Python 3 (also imported by tests/conftest.py).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_STATE_DIR = Path(os.environ.get("MAGTWIN_SLURM_STATE_DIR", "/tmp/magtwin-slurm"))
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
PARTITION = "debug"
DAEMONS = ("munged", "slurmctld", "slurmd")
REQUIRED_PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")


class ClusterError(RuntimeError):
    """The cluster cannot be started or stopped; the message says why and where to look."""


def _log(msg: str) -> None:
    print(f"[magtwin slurm] {msg}", file=sys.stderr, flush=True)


def cannot_run_reason() -> str | None:
    """Why a test cluster cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "the test SLURM cluster needs root (it starts munged, slurmctld and slurmd)"
    missing = [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]
    if missing:
        return f"SLURM/munge programs missing ({', '.join(missing)}): apt-get install slurm-wlm munge libpmix-dev"
    if not any(Path(d, "libpmix.so").exists() for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")):
        return "libpmix.so missing (srun cannot start Open MPI programs): apt-get install libpmix-dev"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "user 'munge' does not exist (the munge package creates it)"
    if SYSTEM_CONF.exists() and not SYSTEM_CONF.is_symlink():
        return f"{SYSTEM_CONF} exists: this machine has its own SLURM, the test cluster will not replace it"
    return None


class Cluster:
    """Paths of one test cluster's state directory, and its start/stop."""

    def __init__(self, state_dir: str | os.PathLike = DEFAULT_STATE_DIR,
                 ctld_port: int = 6817, slurmd_port: int = 6818):
        self.dir = Path(state_dir).resolve()
        self.ctld_port = ctld_port
        self.slurmd_port = slurmd_port
        self.conf = self.dir / "slurm.conf"
        self.munge_dir = self.dir / "munge"
        self.munge_socket = self.munge_dir / "munge.socket.2"
        self.log_dir = self.dir / "log"
        self.pid = {d: self.dir / f"{d}.pid" for d in DAEMONS}
        self.log = {d: self.log_dir / f"{d}.log" for d in DAEMONS}
        self.node = None

    # --- configuration -------------------------------------------------------------------
    def _node_line(self) -> str:
        # `slurmd -C` prints this host's NodeName, boards/sockets/cores/threads and memory
        # exactly as slurmd will later detect them, so the node does not register as INVALID.
        out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
        line = next(l for l in out.splitlines() if l.startswith("NodeName="))
        fields = dict(f.split("=", 1) for f in line.split())
        self.node = fields["NodeName"]
        mem_mb = int(fields.get("RealMemory", "2048"))
        # Below the machine's memory, or slurmd registers the node as having too little.
        fields["RealMemory"] = str(max(512, int(mem_mb * 0.9)))
        keep = ("NodeName", "CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
        return " ".join(f"{k}={fields[k]}" for k in keep if k in fields) + " NodeAddr=127.0.0.1 State=UNKNOWN"

    def write_config(self) -> None:
        node_line = self._node_line()
        d = self.dir
        text = f"""\
# Written by tools/slurm/cluster.py for host {self.node}: a single-node test cluster.
ClusterName=magtwin
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={d}/ctld
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={self.pid['slurmctld']}
SlurmdPidFile={self.pid['slurmd']}
SlurmctldLogFile={self.log['slurmctld']}
SlurmdLogFile={self.log['slurmd']}
PlugStackConfig={d}/plugstack.conf
# No cgroups in containers/CI: process tracking by /proc, no task binding; limits not enforced.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Debian's Open MPI is started by srun through PMIx (needs libpmix-dev's libpmix.so).
MpiDefault=pmix
# No accounting database: job status comes from squeue, which must keep finished jobs.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
SchedulerType=sched/backfill
ReturnToService=2
InactiveLimit=0
KillWait=10
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=60
{node_line}
# Up to 2 jobs share each core: on a 2-core test machine the points of a sweep (MPI jobs of
# 2 tasks each) still run at the same time, as on a real cluster.
PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
"""
        self.conf.write_text(text)

    # --- daemons ---------------------------------------------------------------------------
    def _read_pid(self, daemon: str) -> int | None:
        try:
            pid = int(self.pid[daemon].read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def running(self) -> dict[str, int | None]:
        return {d: self._read_pid(d) for d in DAEMONS}

    def _start_munged(self) -> None:
        munge = pwd.getpwnam("munge")
        self.munge_dir.mkdir(exist_ok=True)
        self.munge_dir.chmod(0o755)  # munged: the socket folder must be searchable by all
        key = self.munge_dir / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for p in (self.munge_dir, key):
            os.chown(p, munge.pw_uid, munge.pw_gid)
        pid = self.pid["munged"]
        # munged writes its pid file as user munge: give it a folder of its own for it.
        cmd = ["runuser", "-u", "munge", "--", "munged", f"--socket={self.munge_socket}",
               f"--key-file={key}", f"--pid-file={self.munge_dir / 'munged.pid'}",
               f"--log-file={self.munge_dir / 'munged.log'}", f"--seed-file={self.munge_dir / 'munged.seed'}"]
        _run(cmd, "munged", self.munge_dir / "munged.log")
        _wait(lambda: (self.munge_dir / "munged.pid").exists() and self.munge_socket.exists(), 20,
              "munged did not create its socket", self.munge_dir / "munged.log")
        # One pid file per daemon in the state dir (a symlink: munged owns the real one).
        if pid.exists() or pid.is_symlink():
            pid.unlink()
        pid.symlink_to(self.munge_dir / "munged.pid")
        self.log["munged"] = self.munge_dir / "munged.log"

    def _link_system_conf(self) -> None:
        if SYSTEM_CONF.is_symlink():
            target = Path(os.readlink(SYSTEM_CONF))
            if target != self.conf and target.exists():
                other = Cluster(target.parent)
                if any(other.running().values()):
                    raise ClusterError(f"{SYSTEM_CONF} points to another running test cluster ({target.parent}); stop it first")
            SYSTEM_CONF.unlink()
        elif SYSTEM_CONF.exists():
            raise ClusterError(f"{SYSTEM_CONF} is a real SLURM configuration; not replacing it")
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)

    def start(self, timeout_s: float = 60.0) -> None:
        """Start munged, slurmctld and slurmd and wait until the node is idle."""
        reason = cannot_run_reason()
        if reason:
            raise ClusterError(reason)
        if any(self.running().values()):
            raise ClusterError(f"a cluster is already running from {self.dir} (stop it with: {Path(__file__).name} stop)")
        for port in (self.ctld_port, self.slurmd_port):
            if _port_busy(port):
                raise ClusterError(f"port {port} is in use (another slurmctld/slurmd?)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        for sub in ("ctld", "spool", "log"):
            (self.dir / sub).mkdir(exist_ok=True)
        (self.dir / "plugstack.conf").write_text("")
        self.write_config()
        self._link_system_conf()
        try:
            self._start_munged()
            _run(["slurmctld", "-f", str(self.conf), "-c"], "slurmctld", self.log["slurmctld"])
            _wait(lambda: self._read_pid("slurmctld") is not None and _scontrol_ping(), 30,
                  "slurmctld did not answer", self.log["slurmctld"])
            _run(["slurmd", "-f", str(self.conf), "-c"], "slurmd", self.log["slurmd"])
            _wait(lambda: self.node_state() == "idle", timeout_s,
                  f"node {self.node} did not become idle (state {self.node_state()!r})", self.log["slurmd"])
        except BaseException:
            self.stop()
            raise
        _log(f"cluster up: node {self.node} idle, partition {PARTITION}, state in {self.dir}")

    def node_state(self) -> str:
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """Cancel every job, stop each daemon by its own pid, remove our /etc symlink."""
        if self._read_pid("slurmctld"):
            subprocess.run(["scancel", "--full", "--user", pwd.getpwuid(os.geteuid()).pw_name],
                           capture_output=True)
            _wait_quiet(lambda: not _squeue_jobs(), 15)
        for daemon in ("slurmd", "slurmctld", "munged"):
            pid = self._read_pid(daemon)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            if not _wait_quiet(lambda: not _alive(pid), timeout_s):
                _log(f"{daemon} (pid {pid}) ignored SIGTERM; sending SIGKILL")
                os.kill(pid, signal.SIGKILL)
                _wait_quiet(lambda: not _alive(pid), 5)
        if SYSTEM_CONF.is_symlink() and Path(os.readlink(SYSTEM_CONF)) == self.conf:
            SYSTEM_CONF.unlink()
        _log(f"cluster stopped ({self.dir})")

    def status(self) -> str:
        lines = [f"state dir {self.dir}"]
        for d, pid in self.running().items():
            lines.append(f"  {d:9s} {'pid ' + str(pid) if pid else 'not running'}")
        if self._read_pid("slurmctld"):
            lines.append(f"  node state: {self.node_state() or '?'}")
        return "\n".join(lines)


# --- helpers -----------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _run(cmd: list[str], name: str, log: Path) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        detail = (r.stderr or r.stdout).strip().splitlines()
        raise ClusterError(f"{name} failed to start: {detail[-1] if detail else 'exit ' + str(r.returncode)} (log: {log})")


def _wait(cond, timeout_s: float, msg: str, log: Path) -> None:
    if not _wait_quiet(cond, timeout_s):
        tail = ""
        try:
            tail = " | ".join(log.read_text().strip().splitlines()[-3:])
        except OSError:
            pass
        raise ClusterError(f"{msg} within {timeout_s:.0f} s (log: {log}){': ' + tail if tail else ''}")


def _wait_quiet(cond, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while True:
        try:
            if cond():
                return True
        except (OSError, subprocess.SubprocessError):
            pass
        if time.monotonic() > end:
            return False
        time.sleep(0.25)


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _scontrol_ping() -> bool:
    r = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    return r.returncode == 0 and "UP" in r.stdout


def _squeue_jobs() -> list[str]:
    r = subprocess.run(["squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i"], capture_output=True, text=True)
    return r.stdout.split() if r.returncode == 0 else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("start", "stop", "status", "check"))
    ap.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="folder for all cluster state (default %(default)s)")
    ap.add_argument("--ctld-port", type=int, default=6817)
    ap.add_argument("--slurmd-port", type=int, default=6818)
    args = ap.parse_args(argv)
    cluster = Cluster(args.state_dir, args.ctld_port, args.slurmd_port)
    try:
        if args.action == "start":
            cluster.start()
        elif args.action == "stop":
            cluster.stop()
        elif args.action == "check":
            reason = cannot_run_reason()
            print(reason or "ok: a test cluster can run here")
            return 1 if reason else 0
        else:
            print(cluster.status())
    except ClusterError as exc:
        print(f"tools/slurm/cluster.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
