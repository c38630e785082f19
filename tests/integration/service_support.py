"""A real ``hq serve`` in a subprocess on a free loopback port, with a read and a write token."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hikyuu_qlib.service.auth import new_token

#: A synthetic market big enough for a backtest to take a few seconds, small enough to train in ~10 s.
SOURCE = "synthetic:5?stocks=300&years=3"
SEGMENTS = {
    "train": "2015-04-01:2016-06-30",
    "valid": "2016-07-01:2016-12-31",
    "test": "2017-01-01:2017-09-30",
}
TRAIN = {
    "universe": "csi300",
    "segments": SEGMENTS,
    "model": {"name": "served", "seed": 3, "num_threads": 2},
    "num_boost_round": 10,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Tokens:
    read: str
    write: str
    env: str  # the HQ_API_TOKENS value (hashes only)


def make_tokens() -> Tokens:
    read, read_entry = new_token("reader", "read")
    write, write_entry = new_token("writer", "write")
    env = json.dumps([read_entry.model_dump(), write_entry.model_dump()])
    return Tokens(read, write, env)


@dataclass
class Server:
    home: Path
    tokens: Tokens
    source: str = SOURCE
    workers: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_")}
        env.update(
            HQ_HOME=str(self.home), HQ_API_TOKENS=self.tokens.env, HQ_SOURCE=self.source, **self.extra_env
        )
        return env

    def start(self, timeout: float = 60.0) -> Server:
        self.port = free_port()
        log = (self.home / "server.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hikyuu_qlib",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=self.env(),
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hq serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/v1/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"hq serve did not become ready:\n{self.log()}")

    def log(self) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait (the server drains and stops its jobs)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def headers(self, scope: str = "write") -> dict[str, str]:
        token = self.tokens.write if scope == "write" else self.tokens.read
        return {"Authorization": f"Bearer {token}"}
