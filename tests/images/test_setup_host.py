"""images/setup-host.sh (run by `make test`): containers.conf gets the two settings this
kind of host needs, once, without disturbing what is there."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "images" / "setup-host.sh"
TOOLS = ["podman", "buildah", "runc", "debootstrap", "skopeo", "containerd", "ctr"]


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    missing = [t for t in TOOLS if shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
    if missing or not Path("/usr/lib/cni/bridge").exists():
        pytest.skip(f"would install {missing or 'CNI plugins'} first (run images/setup-host.sh)")
    return tmp_path / "containers.conf"


def setup(conf: Path) -> str:
    proc = subprocess.run(["bash", str(SCRIPT)], env=dict(os.environ, TYCHO_CONTAINERS_CONF=str(conf)),
                          capture_output=True, text=True, check=True)
    return proc.stderr


def test_setup_writes_both_settings_into_a_missing_file_once(conf: Path) -> None:
    setup(conf)
    first = conf.read_text()
    assert "[containers]\ndefault_ulimits = []" in first and '[engine]\nruntime = "runc"' in first
    assert setup(conf) == "" and conf.read_text() == first


def test_setup_adds_keys_under_existing_sections_and_keeps_what_is_set(conf: Path) -> None:
    conf.write_text('# site settings\n[containers]\nlog_size_max = 1000\n\n[engine]\nruntime = "crun"\n'
                    'events_logger = "file"\n\n[network]\n# runtime = "x"\n')
    setup(conf)
    text = conf.read_text()
    assert text.count("[containers]") == 1 and text.count("[engine]") == 1
    assert "[containers]\ndefault_ulimits = []\nlog_size_max = 1000" in text
    assert 'runtime = "crun"' in text and 'runtime = "runc"' not in text  # the site's choice stays
    assert text.startswith("# site settings") and '[network]\n# runtime = "x"' in text
