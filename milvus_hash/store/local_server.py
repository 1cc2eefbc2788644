"""A real Milvus standalone server on this machine, without Docker.

Runs ``milvus-server`` from the PyPI package ``milvus`` (Milvus 2.3 standalone with embedded etcd
and local storage) on free loopback ports, waits until it answers, and stops it for good. For tests,
benchmarks and local development; production uses ``docker/docker-compose.yml`` or a cluster.

The wrapper's ``milvus`` child outlives a killed wrapper and may ignore SIGTERM for a while, so
:meth:`LocalMilvusServer.stop` signals the whole process group, then sends SIGKILL after a grace
period.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import MilvusUnavailableError

_READY_MARK = "Ctrl+C to exit"
PORT_OPTIONS = (
    "etcd-port", "root-coord-port", "proxy-port", "proxy-internal-port", "query-coord-port",
    "query-node-port", "index-coord-port", "index-node-port", "data-coord-port", "data-node-port",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launcher_works(exe: str) -> bool:
    """Whether ``milvus-server`` at ``exe`` is the ``milvus`` package of this Python (then
    :mod:`.server_launcher` runs it, keeping a restarted server's ports)."""
    import importlib.util

    return Path(exe).parent == Path(sys.executable).parent and importlib.util.find_spec("milvus") is not None


def find_milvus_server() -> str | None:
    """Path of the ``milvus-server`` command: beside this Python first, then on PATH."""
    beside = Path(sys.executable).with_name("milvus-server")
    if beside.exists():
        return str(beside)
    return shutil.which("milvus-server")


class LocalMilvusServer:
    """Start and stop a Milvus standalone server from the ``milvus`` PyPI package.

    Args:
        data_dir: where the server keeps its data, configuration and logs.
        port: gRPC port; a free one by default (all internal ports are chosen free too).
        startup_timeout: seconds to wait for the server to answer (about 10-40 s here).
        stop_grace: seconds between SIGTERM and SIGKILL on stop.
        config: ``milvus.yaml`` settings by dotted key, for example a MinIO / S3 storage:
            ``{"common.storageType": "minio", "minio.address": "127.0.0.1", "minio.port": 9000}``.

    Example::

        with LocalMilvusServer("/tmp/milvus-data") as server:
            store = HashStore(server.uri)
    """

    def __init__(self, data_dir: str | os.PathLike, *, port: int | None = None,
                 startup_timeout: float = 180.0, stop_grace: float = 15.0, config: dict | None = None):
        # absolute: milvus-server resolves a relative --data elsewhere and never answers
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.config = dict(config or {})
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._log_start = 0

    @property
    def uri(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "milvus-server.log"

    def start(self) -> "LocalMilvusServer":
        exe = find_milvus_server()
        if exe is None:
            raise FileNotFoundError("milvus-server not found: pip install milvus (the standalone server package)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = self._ports()
        self.port = ports["proxy-port"]
        cmd = [exe, "--data", str(self.data_dir)]
        if _launcher_works(exe):  # the same server, its port check as Milvus binds: a restart keeps its ports
            cmd = [sys.executable, "-m", "milvus_hash.store.server_launcher", "--data", str(self.data_dir)]
        for opt in PORT_OPTIONS:
            cmd += [f"--{opt}", str(ports[opt])]
        for key, value in self.config.items():
            cmd += ["--extra-config", f"{key}={value}"]
        # The embedded etcd's peer port (2380) is not among the options: give it an etcd
        # configuration of its own (Milvus reads etcd.config.path from ETCD_CONFIG_PATH), so that
        # several servers can run side by side.
        etcd_cfg = self.data_dir / "embed-etcd.yaml"
        client_url, peer_url = f"http://127.0.0.1:{ports['etcd-port']}", f"http://127.0.0.1:{ports['etcd-peer-port']}"
        etcd_cfg.write_text(
            f"listen-client-urls: {client_url}\nadvertise-client-urls: {client_url}\n"
            f"listen-peer-urls: {peer_url}\ninitial-advertise-peer-urls: {peer_url}\n"
            f"initial-cluster: default={peer_url}\n")
        env = dict(os.environ, ETCD_CONFIG_PATH=str(etcd_cfg), PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "ab")
        self._log_start = self._log.tell()
        # A session of its own, so stop() can signal the wrapper and its milvus child together.
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _ports(self) -> dict[str, int]:
        """The server's ports: those of its last run on this data directory if there was one.

        A restart must keep every port: Milvus finds its components through sessions stored in
        etcd, and sessions that name old ports stall the start-up until they expire.
        """
        record = self.data_dir / "ports.json"
        ports = {}
        if record.exists():
            try:
                ports = {k: int(v) for k, v in json.loads(record.read_text()).items()}
            except (ValueError, AttributeError):
                ports = {}
        for opt in PORT_OPTIONS + ("etcd-peer-port",):
            ports.setdefault(opt, free_port())
        if self.port is not None:
            ports["proxy-port"] = self.port
        self._save_ports(ports)
        return ports

    def _save_ports(self, ports: dict[str, int]) -> None:
        (self.data_dir / "ports.json").write_text(json.dumps(ports))

    def _wait_ready(self) -> None:
        from pymilvus import MilvusClient  # deferred: importing pymilvus is slow

        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise MilvusUnavailableError(
                    f"milvus-server exited with code {self.proc.returncode} during start-up; "
                    f"log tail:\n{self.log_tail()}")
            # The wrapper prints its banner once Milvus's own health check says OK.
            if _READY_MARK not in self._log_since_start():
                time.sleep(0.5)
                continue
            self._adopt_actual_ports()
            try:
                client = MilvusClient(uri=self.uri, timeout=3)
                try:
                    client.list_collections(timeout=3)
                    return
                finally:
                    client.close()
            except Exception as exc:  # not up yet
                last_error = exc
                time.sleep(1.0)
        raise MilvusUnavailableError(
            f"milvus-server at {self.uri} did not answer within {self.startup_timeout:.0f} s "
            f"(last error: {last_error}); log tail:\n{self.log_tail()}")

    def _adopt_actual_ports(self) -> None:
        """Read the ports the wrapper really used from the configuration it wrote.

        The wrapper probes each requested port and silently takes the next one when it cannot
        bind (a port in TIME_WAIT after a stop, say), so the requested port is only a wish.
        """
        import yaml

        try:
            cfg = yaml.safe_load((self.data_dir / "configs" / "milvus.yaml").read_text())
            port = int(cfg["proxy"]["port"])
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
            return
        if port != self.port:
            self.port = port
            try:
                ports = json.loads((self.data_dir / "ports.json").read_text())
            except (OSError, ValueError):
                return
            self._save_ports({**ports, "proxy-port": port})

    def _log_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_start)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the wrapper and its milvus child: SIGTERM to the group, SIGKILL after the grace period."""
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                pgid = os.getpgid(proc.pid)
            except ProcessLookupError:
                pgid = None
            if pgid is not None:
                _signal_group(pgid, signal.SIGTERM)
                deadline = time.monotonic() + self.stop_grace
                while time.monotonic() < deadline and _group_alive(pgid):
                    time.sleep(0.2)
                    proc.poll()
                if _group_alive(pgid):
                    _signal_group(pgid, signal.SIGKILL)
                    while _group_alive(pgid) and time.monotonic() < deadline + 10:
                        time.sleep(0.1)
                        proc.poll()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "LocalMilvusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still counts for killpg; treat a group of only zombies as gone.
    for pid_dir in Path("/proc").iterdir() if Path("/proc").exists() else []:
        if not pid_dir.name.isdigit():
            continue
        try:
            stat = (pid_dir / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return not Path("/proc").exists()
