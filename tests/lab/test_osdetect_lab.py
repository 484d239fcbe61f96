"""-O against the lab host's stack (this machine's Linux kernel in a namespace)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from portscope.testing.lab import LabHost


def test_scan_o_names_the_linux_stack(lab_host: LabHost, tmp_path: Path) -> None:
    lab_host.listen_tcp([22, 8080])
    out = tmp_path / "o.json"
    proc = subprocess.run([sys.executable, "-m", "portscope", "scan", "-O", "-Pn", "-p",
                           "22,23,8080", lab_host.addr4, "--json", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "OS details: Linux" in proc.stdout or "OS guess: Linux" in proc.stdout
    host = json.loads(out.read_text())["hosts"][0]
    os_ = host["os"]
    assert os_["family"] == "Linux" and os_["accuracy"] >= 90, os_
    assert os_["cpe"] == ["cpe:2.3:o:linux:linux_kernel:*:*:*:*:*:*:*:*"]
    sig = os_["evidence"]["signature"]
    assert sig["ttl"] == 64 and sig["hops"] == 0
    assert len(os_["evidence"]["guesses"]) >= 2


def test_scan_o_without_open_port_still_guesses(lab_host: LabHost, tmp_path: Path) -> None:
    out = tmp_path / "o.json"
    proc = subprocess.run([sys.executable, "-m", "portscope", "scan", "-O", "-Pn", "-p", "23",
                           lab_host.addr4, "--json", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    os_ = json.loads(out.read_text())["hosts"][0]["os"]
    assert os_ is not None and os_["family"] == "Linux"
    assert os_["accuracy"] < 100  # closed port and ICMP only: less certain
