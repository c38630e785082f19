"""A throwaway PostgreSQL cluster of the test's own, which the test may stop, restart and cut off.

The shared server on 127.0.0.1:5432 is never restarted: tests that need an outage start their own
cluster with the server binaries (``initdb``, ``pg_ctl``) on a free port, in a temporary directory,
as the ``postgres`` user when running as root (PostgreSQL refuses to run as root). It trusts
``postgres`` on 127.0.0.1 and asks every other role for its password (SCRAM), so authentication
failures can be produced for real. :class:`CuttingProxy` sits in front of it and cuts a connection
right after it has forwarded a ``COMMIT`` and the server has answered it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

# an SSL or GSS encryption request: the startup packet follows it
_PRE_STARTUP = (80877103, 80877104)


def server_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: ``HQ_TEST_PG_BIN``, else PATH, else Debian's layout."""
    explicit = os.environ.get("HQ_TEST_PG_BIN")
    if explicit:
        return Path(explicit) if (Path(explicit) / "pg_ctl").is_file() else None
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_ctl").is_file() and (candidate / "initdb").is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateCluster:
    """One PostgreSQL cluster in a temporary directory; ``start``/``stop``/``restart``/``remove``."""

    PASSWORD_ROLE = "hq_pw"
    PASSWORD = "s3cret-pw"
    MISSING_ROLE = "ghost"

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="hq-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "server.log"
        self._user: str | None = None
        if os.geteuid() == 0:  # the server refuses to run as root
            self._user = "postgres"
            pw = pwd.getpwnam(self._user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.sockets.mkdir()
        if self._user:
            pw = pwd.getpwnam(self._user)
            os.chown(self.sockets, pw.pw_uid, pw.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> PrivateCluster:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            f"host all {self.MISSING_ROLE} 127.0.0.1/32 trust\n"  # a role that does not exist, let in
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.sockets}'\nfsync = off\n"
                "full_page_writes = off\nmax_connections = 100\n"
            )
        self.start()
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {self.PASSWORD_ROLE} LOGIN PASSWORD '{self.PASSWORD}'")
            conn.execute(f"CREATE DATABASE test OWNER {self.PASSWORD_ROLE}")
        return self

    def url(
        self,
        *,
        user: str = "postgres",
        password: str | None = None,
        database: str = "postgres",
        port: int | None = None,
    ) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{port or self.port}/{database}"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """A fast shutdown: open sessions are terminated, new connections refused until ``start``."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def restart(self, pause: float) -> None:
        self.stop()
        time.sleep(pause)
        self.start()

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_cluster(bin_dir: Path) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(bin_dir)
    try:
        yield cluster.init()
    finally:
        cluster.remove()


class CuttingProxy:
    """A TCP proxy to ``upstream`` that, when armed, drops the connection that sends the next ``COMMIT``:
    after the server has answered it (the transaction is committed, the client never hears so), or, with
    ``forward=False``, before the server sees it (the transaction is lost with the connection)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._armed = threading.Event()
        self._forward = True
        self.cuts = 0
        self._lock = threading.Lock()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._accepter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()

    def arm(self, *, forward: bool = True) -> None:
        """Cut the next connection that commits (once)."""
        self._forward = forward
        self._armed.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cut = threading.Event()
            committing = threading.Event()
            threading.Thread(
                target=self._client_to_server, args=(client, server, cut, committing), daemon=True
            ).start()
            threading.Thread(
                target=self._server_to_client, args=(server, client, cut, committing), daemon=True
            ).start()

    def _client_to_server(
        self, client: socket.socket, server: socket.socket, cut: threading.Event, committing: threading.Event
    ) -> None:
        """Forward whole protocol messages; note when an armed cut meets a COMMIT."""
        buffer = b""
        started = False  # the startup packet (and an SSL request before it) has no type byte
        try:
            while not cut.is_set():
                data = client.recv(65536)
                if not data:
                    break
                buffer += data
                out = b""
                while True:
                    if not started:
                        if len(buffer) < 8:
                            break
                        size = int.from_bytes(buffer[:4], "big")
                        if len(buffer) < size:
                            break
                        code = int.from_bytes(buffer[4:8], "big")
                        started = code not in _PRE_STARTUP
                        out, buffer = out + buffer[:size], buffer[size:]
                        continue
                    if len(buffer) < 5:
                        break
                    size = int.from_bytes(buffer[1:5], "big") + 1
                    if len(buffer) < size:
                        break
                    message, buffer = buffer[:size], buffer[size:]
                    if message[:1] == b"Q" and message[5:11].upper() == b"COMMIT" and self._take():
                        if not self._forward:  # the server never sees the COMMIT
                            server.sendall(out)
                            cut.set()
                            with self._lock:
                                self.cuts += 1
                            _close(client)
                            _close(server)
                            return
                        committing.set()
                    out += message
                server.sendall(out)
        except OSError:
            pass
        finally:
            if not cut.is_set():
                _close(server)

    def _take(self) -> bool:
        with self._lock:
            if self._armed.is_set():
                self._armed.clear()
                return True
            return False

    def _server_to_client(
        self, server: socket.socket, client: socket.socket, cut: threading.Event, committing: threading.Event
    ) -> None:
        """Forward replies; after the armed COMMIT, wait for the server's CommandComplete, then cut."""
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if committing.is_set():
                    # the server's answer to COMMIT (CommandComplete "COMMIT", then ReadyForQuery):
                    # swallow it and cut both sides
                    received = data
                    while b"C\x00\x00\x00\x0bCOMMIT\x00" not in received:
                        more = server.recv(65536)
                        if not more:
                            break
                        received += more
                    cut.set()
                    with self._lock:
                        self.cuts += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(server)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
