"""``gentool serve``: the runs' models over HTTP, with an OpenAI-compatible surface where one
exists (docs/serving.md). Handlers call the same ``gentool.api`` and task interfaces as the
command line. starlette and uvicorn (the ``serve`` extra) are imported only here, when
serving, so the rest of gentool never needs them."""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gentool import api
from gentool.errors import EXIT_INTERRUPTED, EXIT_OK, PluginError, RecipeError


def run_names(specs: Sequence[str]) -> dict[str, Path]:
    """``RUN`` or ``NAME=RUN`` arguments: the model id each run is served as (by default
    the run folder's name) and its path; two runs may not share an id."""
    named: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or "/" in name:
            name, path = Path(spec).resolve().name, spec
        if name in named:
            raise RecipeError(
                f"two runs would be served as '{name}'; name them: NAME={path} (NAME=RUN)"
            )
        named[name] = Path(path)
    return named


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a clear error (a port in use, an address not of this host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise RecipeError(f"cannot resolve --host '{host}' ({err.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise RecipeError(f"port {port} on {host} is in use; choose another --port") from None
        raise RecipeError(f"cannot listen on {host}:{port} ({err.strerror})") from None
    sock.set_inheritable(True)
    return sock


def serve(
    specs: Sequence[str],
    host: str,
    port: int,
    settings: Any,
    log: Callable[[str], None],
) -> int:
    """Load every run, listen, answer until SIGTERM or Ctrl-C, then finish the requests in
    flight. The exit status: 0 after SIGTERM, 130 after Ctrl-C."""
    try:
        import uvicorn

        from gentool.serve.app import Served, Server, build_app
        from gentool.serve.workers import ModelWorker
    except ImportError as err:
        raise PluginError(
            f"gentool serve needs starlette and uvicorn ({err.name} is missing); "
            "install them: pip install 'gentool[serve]'"
        ) from None
    paths = run_names(specs)
    models = {name: api.load(path) for name, path in paths.items()}  # every check first
    sock = _bind(host, port)
    served = {
        name: Served(
            name,
            path,
            models[name],
            ModelWorker(name, settings.queue_size, settings.batch_window, settings.max_batch),
        )
        for name, path in paths.items()
    }
    config = uvicorn.Config(
        build_app(Server(served, settings)),
        loop="asyncio",
        http="h11",
        lifespan="off",
        log_level="warning",
        access_log=False,
        # After SIGTERM, requests in flight get this long to finish.
        timeout_graceful_shutdown=int(settings.timeout) + 5,
    )
    server = _server_class()(config)
    bound = sock.getsockname()
    where = f"http://{host if ':' not in host else f'[{host}]'}:{bound[1]}"
    auth = "API key required" if settings.api_key else "no API key (--api-key to require one)"
    log(f"Serving {', '.join(served)} on {where}/v1 ({auth}); Ctrl-C or SIGTERM stops")
    try:
        server.run(sockets=[sock])
    finally:
        for s in served.values():
            s.worker.stop(timeout=5)
        sock.close()
    stopped_by = server.signals[0] if server.signals else signal.SIGTERM
    log("Stopped; every request in flight was answered.")
    return EXIT_INTERRUPTED if stopped_by == signal.SIGINT else EXIT_OK


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, stopping on SIGTERM/SIGINT after the requests in flight (its
        graceful shutdown), without re-raising the signal afterwards: the process then
        exits with gentool's own status (0, or 130 for Ctrl-C)."""

        signals: list[int]

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            self.signals = []
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

        def _stop(self, sig: int, frame: Any) -> None:
            self.signals.append(sig)
            self.handle_exit(sig, frame)

    return Server


__all__ = ["run_names", "serve"]
