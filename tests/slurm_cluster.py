"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd on 127.0.0.1, all
started by the fixture from a temporary folder and stopped by pid when the session ends.

Why real daemons: `journalq slurm` writes sbatch array scripts, and what matters is what
Slurm does with them (array throttles, GPU binding, requeue, the task's environment). A fake
sbatch would only assert what we believe Slurm does. Debian's slurm-wlm (22.05) runs without
systemd when each daemon is started in the foreground with its own config, so the whole
cluster lives in one temporary folder: its own munge key and socket, state, spool and logs,
ports picked free, nothing in /etc touched and nothing left running.

The node has the machine's CPUs (at least 2) and two fake GPUs backed by /dev/null and /dev/zero,
so `--gres=gpu:1` is allocatable and sets CUDA_VISIBLE_DEVICES in the task as on a real GPU
node. Registered as a plugin (tests/conftest.py `pytest_plugins`); skips, with one line, only
when the Slurm or munge binaries are absent (`.ci/slurm-setup` installs them in CI).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from slurm_conf import GRES_CONF, NODE, PARTITION, free_ports, slurm_conf

BINARIES = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo",
            "scancel")
START_TIMEOUT = 60.0
PR_SET_PDEATHSIG = 1  # prctl(2)
PREFIX = "journalq-slurm-"  # the clusters' folders in /tmp
# Log lines that are noise on this cluster, left out of the logs shown on failure: Debian's
# Slurm loads every MPI plugin (no PMIx library), a fresh state folder has no state files, and
# munged notes "Unauthorized credential" for each RPC, harmlessly (dun/munge issue #120).
NOISE = ("pmix", "MPI: Cannot create context", "state file", "Trying backup state",
         "Unauthorized credential for client")
TIMINGS: dict[str, float] = {}  # seconds, printed at the end of the run
NOTES: list[str] = []  # what tests observed of the cluster, printed at the end of the run
FIELD = re.compile(r"(\w[\w:/]*)=(.*?)(?= \w[\w:/]*=|$)")  # scontrol -o's Key=value


class SlurmError(RuntimeError):
    """A Slurm command failed or the cluster did not come up; carries the daemons' logs."""


class SlurmCluster:
    """The running cluster: its folder, the environment for Slurm's commands, and helpers.

    `env` holds SLURM_CONF (and the rest of os.environ); pass it to any subprocess that runs
    sbatch, squeue or scontrol, as journalq's tests will.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.shared = root / "shared"  # a folder every task can read and write
        # The submitter's environment passes into the tasks (sbatch --export=ALL): leave out
        # any Slurm or GPU variables of the machine running pytest, as if on a login node.
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith("SLURM_") and k != "CUDA_VISIBLE_DEVICES"}
        self.env = {**inherited, "SLURM_CONF": str(self.conf)}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started_in = 0.0  # seconds from first daemon to the node idle

    # -- commands -------------------------------------------------------------------------

    def run(self, *argv: str, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command against this cluster; on failure raise with the daemons' logs."""
        done = subprocess.run([which(argv[0]) or argv[0], *argv[1:]], capture_output=True,
                              text=True, env=self.env, timeout=timeout, cwd=self.shared)
        if check and done.returncode != 0:
            raise SlurmError(f"{' '.join(argv)} exited {done.returncode}: "
                             f"{done.stderr.strip()}\n{self.logs()}")
        return done

    def folder(self, name: str) -> Path:
        """A new empty folder under the shared one, that every task can read and write."""
        path = self.shared / f"{name}-{time.monotonic_ns()}"
        path.mkdir(mode=0o777)
        return path

    def sbatch(self, script_text: str, *args: str, cwd: Path | None = None) -> int:
        """Submit `script_text` as a batch script with sbatch ARGS; return the job id.

        The script is saved in `cwd` (default: the shared folder), which is also the job's
        working folder and where its slurm-%A_%a.out files go unless ARGS say otherwise.
        """
        cwd = cwd or self.shared
        script = cwd / f"submit-{time.monotonic_ns()}.sh"
        script.write_text(script_text)
        return self.sbatch_file(script, *args, cwd=cwd)

    def sbatch_file(self, script: Path, *args: str, cwd: Path | None = None) -> int:
        """Submit a script file (one `journalq slurm` wrote) with sbatch ARGS; the job id."""
        cwd = cwd or script.parent
        done = self.run("sbatch", "--parsable", f"--chdir={cwd}", *args, str(script))
        return int(done.stdout.strip().split(";")[0])

    def jobs(self, job: int | str) -> list[dict[str, str]]:
        """`scontrol show job JOB` as one dict per job or array task (JobId, ArrayTaskId,
        JobState, Restarts, ExitCode, ...). Without accounting this stands in for sacct; a
        finished job stays visible for MinJobAge (10 min)."""
        out = self.run("scontrol", "-o", "show", "job", str(job)).stdout
        return [dict(FIELD.findall(line)) for line in out.splitlines() if line.strip()]

    def scontrol(self, *args: str) -> str:
        """`scontrol ARGS`'s output."""
        return self.run("scontrol", *args).stdout

    def squeue(self, *args: str) -> list[str]:
        """`squeue -h ARGS`'s lines (default format: `%i %t`, job id and state)."""
        fmt = [] if any(a.startswith(("-o", "--format", "-O")) for a in args) else ["-o", "%i %t"]
        return self.run("squeue", "-h", *fmt, *args).stdout.split("\n")[:-1]

    def wait_all(self, timeout: float = 60, job: int | None = None) -> float:
        """Wait until squeue shows no job (or none of `job`); return the seconds waited."""
        start = time.monotonic()
        args = ["-j", str(job)] if job is not None else []
        while self.squeue(*args):
            if time.monotonic() - start > timeout:
                raise SlurmError(f"jobs still queued after {timeout}s:\n"
                                 + "\n".join(self.squeue(*args)) + "\n" + self.logs())
            time.sleep(0.2)
        return time.monotonic() - start

    def wait_for(self, what: str, predicate: Callable[[], object], timeout: float = 60) -> None:
        """Poll `predicate()` every 0.1 s until true; raise with the logs if it never is."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise SlurmError(f"timed out after {timeout}s waiting for {what}\n{self.logs()}")
            time.sleep(0.1)

    def node_state(self) -> str:
        """The node's state as sinfo prints it (idle, mix, alloc, down*, ...)."""
        done = self.run("sinfo", "-h", "-n", NODE, "-o", "%t", check=False)
        return done.stdout.strip()

    def cancel_all(self) -> None:
        """Cancel every job (a test's leftovers must not run into the next test)."""
        self.run("scancel", "--partition", PARTITION, check=False)
        self.wait_all(timeout=30)

    def reset(self) -> None:
        """Cancel every job and bring the node back to idle (resumed if a test drained it)."""
        self.cancel_all()
        if self.node_state() != "idle":
            self.run("scontrol", "update", f"NodeName={NODE}", "State=RESUME", check=False)
            self.wait_for("the node to be idle again", lambda: self.node_state() == "idle",
                          timeout=30)

    def logs(self, lines: int = 40) -> str:
        """The end of every daemon's log (known noise left out), for a failure message."""
        parts = []
        for log in sorted((self.root / "log").glob("*")):
            if log.suffix == ".out" and log.with_suffix(".log").exists():
                continue  # slurmd writes the same lines to its log file and its output
            kept = [line for line in log.read_text(errors="replace").splitlines()
                    if not any(noise in line for noise in NOISE)]
            parts.append(f"--- {log.name} (last {lines} lines) ---\n" + "\n".join(kept[-lines:]))
        return "\n".join(parts)

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Write the configs, start munged, slurmctld, slurmd; wait for the node to be idle."""
        started = time.monotonic()
        for sub in ("state", "spool", "log", "shared"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # munged wants its socket's folders executable by all
        self.shared.chmod(0o777)
        (self.root / "plugstack.conf").write_text("")  # not /etc/slurm's SPANK plugins
        (self.root / "gres.conf").write_text(GRES_CONF)  # found beside slurm.conf
        self._start_munge()
        for attempt in range(1, 4):
            try:
                self._start_slurm()
                break
            except SlurmError:
                # A port picked free may have been taken before slurmctld bound it: new ports.
                self._stop_daemons("slurmd", "slurmctld")
                if attempt == 3:
                    raise
        self.started_in = time.monotonic() - started

    def _start_slurm(self) -> None:
        """slurmctld, then slurmd, on two ports free now; wait for the node to be idle."""
        ctld_port, slurmd_port = free_ports(2)
        # At least 2 CPUs even on a 1-core machine (config_overrides lets the node claim
        # them), so two tasks can run at once as on a 2-GPU node.
        cpus = max(2, os.cpu_count() or 1)
        self.conf.write_text(slurm_conf(self.root, ctld_port, slurmd_port, cpus))
        for state in (self.root / "state").iterdir():
            state.unlink()
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._wait_ready("slurmctld", lambda: self.run("scontrol", "ping",
                                                       check=False).returncode == 0)
        self._spawn("slurmd", ["slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait_ready("the node to be idle", lambda: self.node_state() == "idle")
        # One job through the whole chain (munge credentials, launch, slurmstepd) before any
        # test: a broken cluster fails here with its logs, and slurmctld's first scheduling
        # pass, some 3 s after it starts, is not billed to the first test.
        warm = self.sbatch("#!/bin/sh\ntrue\n", "--output=/dev/null")
        self._wait_ready("a first job to run", lambda: not self.squeue("-j", str(warm)))
        state = self.run("scontrol", "show", "job", str(warm)).stdout
        if "JobState=COMPLETED" not in state:
            raise SlurmError(f"Slurm test cluster: a first job did not complete:\n{state}\n"
                             f"{self.logs()}")

    def _start_munge(self) -> None:
        """munged with its own key and socket: Slurm's daemons and commands authenticate
        through it (AuthInfo=socket=...), so the machine's /etc/munge is never used."""
        munge = self.root / "munge"
        munge.mkdir(mode=0o755)
        key_dir = munge / "key"
        key_dir.mkdir(mode=0o700)
        key = key_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)  # munged refuses a key readable by others
        sock = munge / "munge.socket"
        self._spawn("munged", [
            "munged", "--foreground", f"--socket={sock}", f"--key-file={key}",
            f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}",
            f"--log-file={self.root / 'log' / 'munged.log'}", "--num-threads=2",
        ])
        self._wait_ready("munged", lambda: subprocess.run(
            ["munge", "-n", "-S", str(sock)], capture_output=True).returncode == 0)

    def _spawn(self, name: str, argv: list[str]) -> None:
        """Start a daemon in the foreground (so its pid is ours to stop), output to a log."""
        out = (self.root / "log" / f"{name}.out").open("wb")
        self.procs[name] = subprocess.Popen(
            [which(argv[0]), *argv[1:]], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            preexec_fn=die_with_parent)
        out.close()

    def _wait_ready(self, what: str, ready: Callable[[], object]) -> None:
        """Wait for `ready()`, failing at once (with logs) if any daemon has exited."""
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
            if dead or time.monotonic() > deadline:
                reason = f"exited: {dead}" if dead else f"timed out after {START_TIMEOUT}s"
                raise SlurmError(f"Slurm test cluster: waiting for {what}, {reason}\n"
                                 f"{self.logs()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Cancel the jobs, then stop slurmd, slurmctld and munged by pid, and kill any task
        or slurmstepd of this cluster still alive (found by its SLURM_CONF)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            with contextlib.suppress(SlurmError, subprocess.TimeoutExpired):
                self.cancel_all()
        self._stop_daemons("slurmd", "slurmctld", "munged")
        for pid in self.leftover_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _stop_daemons(self, *names: str) -> None:
        """SIGTERM each daemon we started, by its pid; SIGKILL it after 15 s."""
        for name in names:
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def leftover_pids(self) -> list[int]:
        """Pids of live processes started for this cluster: the daemons, and anything whose
        environment names this cluster's SLURM_CONF (slurmstepd and the tasks inherit it)."""
        marker = f"SLURM_CONF={self.conf}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                status = (entry / "stat").read_text()
            except OSError:
                continue
            if marker in environ.split(b"\0") and status.split(") ")[-1][0] != "Z":
                pids.append(int(entry.name))
        return pids


def which(program: str) -> str:
    """`program`'s path, also looking in /usr/sbin, where Debian puts the daemons and where
    a non-root PATH does not look ("" if absent)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(program, path=path) or ""


def missing_binaries() -> list[str]:
    """The Slurm and munge programs not installed."""
    return [b for b in BINARIES if not which(b)]


def started_at(pid: int) -> str:
    """When process `pid` started (clock ticks after boot), "" if it is gone: a pid and
    this name one process, even after the pid is reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def sweep_stale() -> None:
    """Remove the clusters of earlier runs that died without tearing down (SIGKILL, timeout):
    their daemons died with them (die_with_parent), but tasks still running and their
    slurmstepd live on. A cluster whose owner (the pytest that made it) lives is left alone."""
    for root in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            pid, start = (root / "owner").read_text().split()
        except (OSError, ValueError):
            continue  # being made right now, or not ours
        if started_at(int(pid)) == start:
            continue
        for leftover in SlurmCluster(root).leftover_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def die_with_parent() -> None:
    """In a daemon about to start: have the kernel SIGTERM it if pytest dies (a killed or
    timed-out run), so no daemon outlives the run that started it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@pytest.fixture(scope="session")
def slurm_cluster_session() -> Iterator[SlurmCluster]:
    """A running one-node cluster, shared by the session's tests (start-up costs seconds).

    Tests use `slurm_cluster`, which also cleans up after each test. Its folder is a fresh
    one in /tmp, not pytest's tmp_path: munged wants every folder above its socket to be
    executable by all, and pytest's are private to their owner.
    """
    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm not installed (no {', '.join(missing)}); .ci/slurm-setup installs it")
    sweep_stale()
    root = Path(tempfile.mkdtemp(prefix=PREFIX))
    (root / "owner").write_text(f"{os.getpid()} {started_at(os.getpid())}")
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        TIMINGS["cluster start-up (munged, slurmctld, slurmd, node idle)"] = cluster.started_in
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def slurm_cluster(slurm_cluster_session: SlurmCluster) -> Iterator[SlurmCluster]:
    """The session's cluster, handed to the next test clean: no job queued or running
    (a failed test's `sleep 300` would otherwise hold a GPU) and the node idle again."""
    yield slurm_cluster_session
    slurm_cluster_session.reset()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used the cluster shows the daemons' logs in its report."""
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "funcargs", {}).get("slurm_cluster")
    if report.failed and isinstance(cluster, SlurmCluster):
        report.sections.append(("slurm daemons' logs", cluster.logs()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How long the cluster took to start and each scenario that recorded its time, and what
    the tests noted of it."""
    if TIMINGS or NOTES:
        terminalreporter.section("slurm test cluster")
        width = max(map(len, TIMINGS), default=0)
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name:<{width}}  {seconds:6.1f} s")
        for note in NOTES:
            terminalreporter.write_line(note)
