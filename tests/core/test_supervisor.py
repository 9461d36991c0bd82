"""The supervisor runs any command line, restarts it with the one back-off, stops it cleanly."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from caretaker.backoff import backoff
from caretaker.supervisor import HEALTHY_AFTER, Child, Supervisor
from tests.waiting import wait_until


def test_a_dying_child_is_restarted_after_the_back_off(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "dies.log"
    child = Child("dies", [sys.executable, "-c", "print('ran'); raise SystemExit(3)"], log)
    sup = Supervisor([child], os.environ)
    sup.start_all(now=100.0)
    wait_until(lambda: child.process is not None and child.process.poll() is not None, 10,
               "the child to exit")
    assert sup.poll(now=101.0)  # it died: restart planned after backoff(1)
    assert child.last_exit == 3 and child.failures == 1 and child.restarts == 0
    assert child.next_start == 101.0 + backoff(1)
    assert not sup.poll(now=101.0 + backoff(1) / 2)  # not yet
    assert sup.poll(now=101.0 + backoff(1)) and child.restarts == 1
    wait_until(lambda: child.process is not None and child.process.poll() is not None, 10,
               "the child to exit again")
    sup.poll(now=102.0)
    assert child.failures == 2 and child.next_start == 102.0 + backoff(2)
    # a child that ran long enough counts as healthy: the back-off starts again
    sup.poll(now=102.0 + backoff(2))
    wait_until(lambda: child.process is not None and child.process.poll() is not None, 10,
               "the third run to exit")
    sup.poll(now=102.0 + backoff(2) + HEALTHY_AFTER + 1)
    assert child.failures == 1
    sup.stop_all()
    assert log.read_text().count("ran") == 3


def test_any_command_line_runs_and_stops_with_its_process_group(tmp_path: Path) -> None:
    # a shell that starts a grandchild: stopping the child stops its whole group
    pid_file = tmp_path / "grandchild"
    child = Child("shell", ["/bin/sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"])
    sup = Supervisor([], os.environ)
    sup.add(child)
    grandchild = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 10,
                                "the grandchild to start"))
    assert child.running and child.pid is not None
    sup.stop_all()
    assert not child.running
    wait_until(lambda: not Path(f"/proc/{grandchild}").exists()
               or Path(f"/proc/{grandchild}/stat").read_text().split(") ")[1][0] == "Z",
               10, "the grandchild to be stopped")
