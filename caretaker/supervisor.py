"""Child processes kept running: started, restarted with back-off when they die, stopped cleanly.

A child is any command line (the caller builds it: a Caretaker process, Mosquitto, ...); the
supervisor knows nothing of what it runs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from caretaker.backoff import backoff

log = logging.getLogger(__name__)

# A child that ran this long before dying counts as healthy: its back-off starts again.
HEALTHY_AFTER = 60.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the supervisor itself is killed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: `caretaker down` sweeps instead
        pass


@dataclass
class Child:
    """One supervised process (`argv` is its whole command line) and its restart bookkeeping.

    Its output is appended to `log_path`, or shares the supervisor's when that is None.
    """

    name: str
    argv: Sequence[str]
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0
    next_start: float = 0.0
    last_exit: int | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.running else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, env: Mapping[str, str], now: float) -> None:
        """Start the process, its output appended to its log file."""
        if self._log is None and self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            list(self.argv), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
            env=dict(env), start_new_session=True,  # own group: Ctrl-C reaches only us
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl runs before exec
        )
        self.started_at = now

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the child's process group; SIGKILL it if it has not exited in time."""
        if self.process is not None and self.running:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)  # any process it left behind
        if self._log is not None:
            self._log.close()
            self._log = None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Supervisor:
    """Keeps a list of children running; `poll()` is called from the caller's loop."""

    def __init__(self, children: Sequence[Child], env: Mapping[str, str]) -> None:
        self.children = list(children)
        self.env = env

    def start_all(self, now: float | None = None) -> None:
        """Start every child not started yet, in order."""
        now = time.monotonic() if now is None else now
        for child in self.children:
            if child.process is None:
                child.start(self.env, now)
                log.info("started %s (pid %s)", child.name, child.pid)

    def add(self, child: Child, now: float | None = None) -> Child:
        """Start one more child and keep it running; it is stopped before those added earlier."""
        self.children.append(child)
        self.start_all(now)
        return child

    def poll(self, now: float | None = None) -> bool:
        """Restart children that died, once their back-off has passed; True if anything changed."""
        now = time.monotonic() if now is None else now
        changed = False
        for child in self.children:
            if child.process is not None and not child.running:
                code = child.process.returncode
                ran = now - child.started_at
                child.failures = 1 if ran >= HEALTHY_AFTER else child.failures + 1
                child.next_start = now + backoff(child.failures)
                child.last_exit = code
                log.warning("%s exited with %s after %.1fs; restarting in %.1fs%s", child.name,
                            code, ran, child.next_start - now,
                            f" (see {child.log_path})" if child.log_path else "")
                child.process = None
                changed = True
            if child.process is None and now >= child.next_start:
                child.start(self.env, now)
                child.restarts += 1
                log.info("restarted %s (pid %s, restart %d)", child.name, child.pid,
                         child.restarts)
                changed = True
        return changed

    def stop_all(self) -> None:
        """Stop the children, the last started first."""
        for child in reversed(self.children):
            child.stop()
            log.info("stopped %s", child.name)
