"""A throw-away OpenSSH server on a loopback port for the remote tests (Debian's
openssh-server): its own host key, one client key, config and log in one folder. It runs in
the foreground as a child of the test; exactly it and the connection processes it forked are
stopped at the end."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .faultkit import descendants

PACKAGE = "openssh-server"


def sshd_program() -> str | None:
    return shutil.which("sshd", path=os.pathsep.join([os.environ["PATH"], "/usr/sbin"]))


@dataclass(frozen=True)
class SSHServer:
    port: int
    user: str
    key: Path
    home: Path
    """A HOME whose .ssh/known_hosts knows the server, for the clients (DVC's asyncssh)."""

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "HOME": str(self.home)}


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30
    )
    return path.with_suffix(".pub").read_text().strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def ssh_server(folder: Path, timeout: float = 30) -> Iterator[SSHServer]:
    """sshd on 127.0.0.1 accepting only a fresh key, for the user running the tests."""
    program = sshd_program()
    assert program is not None, f"sshd not found; apt-get install {PACKAGE}"
    folder.mkdir(parents=True)
    host_key = _keygen(folder / "host_key")
    (folder / "authorized_keys").write_text(_keygen(folder / "client_key") + "\n")
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\n"
    )
    home = folder / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    # sshd refuses to start without its privilege-separation folder, which Debian's service
    # unit creates at boot; a container without systemd lacks it.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    with open(folder / "sshd.log", "w") as log:
        process = subprocess.Popen(
            [program, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start:\n{(folder / 'sshd.log').read_text()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield SSHServer(port, getpass.getuser(), folder / "client_key", home)
    finally:
        started = [*descendants(process.pid), process.pid]
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        process.wait(timeout=15)
        deadline = time.monotonic() + 15
        while (alive := [p for p in started if Path(f"/proc/{p}").exists()]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert not alive, f"sshd processes {alive} outlived their server"
