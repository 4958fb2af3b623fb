"""Serving the emulator over HTTPS with uvicorn, in the foreground or on a background thread."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .app import create_app
from .runtime import Emulator
from .tls import TlsFiles, make_certificates

HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class QuietHttpProtocol(HttpToolsProtocol):
    """uvicorn's protocol without access lines. uvicorn decides per connection to log requests when the logger
    "uvicorn.access" has a handler, its ancestors' included, whatever access_log says; an emulator served inside
    another uvicorn app's process (the demo, tests) would then log every Graph URL it answers, query values
    (people's addresses) included, through that app's logging."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False


class EmulatorServer:
    """An emulator bound to a port with its TLS files; run() blocks, start() runs it on a thread."""

    def __init__(self, emu: Emulator, data_dir: Path, port: int = 0) -> None:
        self.emulator = emu
        self.tls: TlsFiles = make_certificates(Path(data_dir))
        self.socket = bind(port)
        self.port = self.socket.getsockname()[1]
        self.base_url = f"https://{HOST}:{self.port}"
        emu.base_url = self.base_url
        config = uvicorn.Config(
            create_app(emu),
            ssl_certfile=str(self.tls.cert_path),
            ssl_keyfile=str(self.tls.key_path),
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=QuietHttpProtocol,
            loop="uvloop",
            timeout_keep_alive=30,
            backlog=2048,
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name=f"graph-emulator-{self.port}", daemon=True)
        self.thread.start()

    def wait_started(self, timeout: float = 15.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.thread is not None and not self.thread.is_alive():
                raise RuntimeError("the emulator server thread stopped during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("the emulator did not start in time")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
        self.socket.close()

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
