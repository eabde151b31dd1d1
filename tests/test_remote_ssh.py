"""DVC against a real SSH remote (DVC's `dvc-ssh` plugin and a throw-away sshd on a loopback
port): push, a fresh clone's pull with sha256-identical files, a push killed mid-transfer
that a second push completes, and a pull after that. docs/remotes.md says how a team sets
one up; tests/test_dvc.py keeps the local-folder remote's test."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tlrepro import storage

from .conftest import BIN, dvc_workspace, run, tiny_config, workspace_env
from .faultkit import REPORT
from .sshd import PACKAGE, SSHServer, ssh_server, sshd_program
from .test_dvc import commit_all

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(sshd_program() is None, reason=f"needs sshd: apt-get install {PACKAGE}"),
]

DVC = str(BIN / "dvc")
BIG = "bulk/big.bin"  # a data file of the team's, tracked with `dvc add`
BIG_MB = 256  # large enough that a push over loopback takes long enough to be killed in it


def tracked_files(root: Path) -> dict[str, str]:
    """sha256 of every file DVC restores: data, checkpoints, results."""
    return {
        str(p.relative_to(root)): storage.sha256_file(p)
        for folder in ("data", "results", Path(BIG).parent)
        for p in sorted((root / folder).rglob("*"))
        if p.is_file() and not p.name.startswith(".") and "raw" not in p.parts
    }


def add_ssh_remote(root: Path, server: SSHServer, remote: Path) -> None:
    run([DVC, "remote", "add", "-d", "team", f"ssh://127.0.0.1{remote}"], root)
    run([DVC, "remote", "modify", "team", "port", str(server.port)], root)
    run([DVC, "remote", "modify", "team", "user", server.user], root)
    # the key is the machine's own: .dvc/config.local, which git does not see
    run([DVC, "remote", "modify", "--local", "team", "keyfile", str(server.key)], root)


def dvc(server: SSHServer, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = server.env(workspace_env(root))
    result = subprocess.run([DVC, *args], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def remote_bytes(remote: Path) -> int:
    return sum(p.stat().st_size for p in remote.rglob("*") if p.is_file())


def kill_push_mid_transfer(server: SSHServer, root: Path, remote: Path) -> int:
    """Start `dvc push`, SIGKILL it (with its process group) once the remote holds some but
    not all of the data; returns the bytes the remote held then."""
    push = subprocess.Popen(
        [DVC, "push"],
        cwd=root,
        env=server.env(workspace_env(root)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    try:
        while (held := remote_bytes(remote)) < BIG_MB << 18:  # a quarter of the big file
            assert push.poll() is None, "the push finished before it could be killed"
            assert time.monotonic() < deadline, "the push moved no data in 120 s"
            time.sleep(0.05)
    finally:
        os.killpg(push.pid, signal.SIGKILL)
        push.wait()
    return held


@pytest.mark.slow
def test_push_pull_and_an_interrupted_push_over_ssh(tmp_path):
    root = dvc_workspace(tmp_path / "repo", tiny_config())
    run([DVC, "repro"], root)
    (root / BIG).parent.mkdir()
    with open(root / BIG, "wb") as handle:
        for _ in range(BIG_MB):
            handle.write(os.urandom(1 << 20))
    run([DVC, "add", BIG], root)
    expected = tracked_files(root)
    remote = tmp_path / "remote"

    with ssh_server(tmp_path / "sshd") as server:
        add_ssh_remote(root, server, remote)
        commit_all(root, "pipeline, lock, a large data file and the team's remote")
        held = kill_push_mid_transfer(server, root, remote)
        assert "new:" in dvc(server, root, "status", "--cloud").stdout  # really interrupted
        second = dvc(server, root, "push")
        assert "pushed" in second.stdout, second.stdout
        assert "new" not in dvc(server, root, "status", "--cloud").stdout

        clone = tmp_path / "clone"
        run(["git", "clone", "-q", str(root), str(clone)], tmp_path)
        run([DVC, "remote", "modify", "--local", "team", "keyfile", str(server.key)], clone)
        dvc(server, clone, "pull")
        assert tracked_files(clone) == expected
        assert "up to date" in run([DVC, "repro", "--dry"], clone).stdout
    REPORT.append(
        f"ssh remote: pushed {len(expected)} files ({BIG_MB} MB of them {BIG}); the first push "
        f"was SIGKILLed with {held} bytes on the remote; a second push completed it; a fresh "
        f"clone pulled {len(expected)} sha256-identical files and `dvc repro` found it up to date"
    )
