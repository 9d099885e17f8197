"""A total deadline per HTTP request, which a server that drips one byte a second cannot stretch.

httpx's ``timeout`` bounds each socket operation, not the request: a body sent one byte per
second never trips a 60 s read timeout. :func:`total_deadline` sets a per-thread deadline and the
network backend of :func:`deadline_http_client` shortens every connect / read / write to the time
left, raising the transport's own timeout errors once it has passed (so clients retry or report it
as any other timeout).

>>> with total_deadline(30.0):
...     left = remaining(None)
>>> 0 < left <= 30.0
True
>>> remaining(5.0)  # no deadline set on this thread: the operation's own timeout
5.0
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCAL = threading.local()


@contextmanager
def total_deadline(seconds: float | None) -> Iterator[None]:
    """Every network operation of this thread inside the block ends by ``seconds`` from now."""
    previous = getattr(_LOCAL, "deadline", None)
    _LOCAL.deadline = None if seconds is None else time.monotonic() + float(seconds)
    try:
        yield
    finally:
        _LOCAL.deadline = previous


def remaining(timeout: float | None, error: type[Exception] = TimeoutError) -> float | None:
    """``timeout`` shortened to the time left before this thread's deadline; ``error`` once past."""
    deadline = getattr(_LOCAL, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's total deadline has passed")
    return left if timeout is None else min(timeout, left)


def _network_classes(httpcore2: Any):
    class DeadlineStream(httpcore2.NetworkStream):
        def __init__(self, inner: Any):
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, remaining(timeout, httpcore2.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, remaining(timeout, httpcore2.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            return DeadlineStream(self._inner.start_tls(
                ssl_context, server_hostname, remaining(timeout, httpcore2.ConnectTimeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class DeadlineBackend(httpcore2.NetworkBackend):
        def __init__(self, inner: Any):
            self._inner = inner

        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            return DeadlineStream(self._inner.connect_tcp(
                host, port, remaining(timeout, httpcore2.ConnectTimeout), local_address,
                socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):
            return DeadlineStream(self._inner.connect_unix_socket(
                path, remaining(timeout, httpcore2.ConnectTimeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return DeadlineBackend


def _openai_httpx() -> Any:
    """The httpx module the installed openai client is built on (httpx2 from openai 3 on).

    Taken from openai itself, never imported by name: httpx / httpx2 and their httpcore are
    openai's dependencies (the ``models`` extra declares openai), and which pair it uses
    depends on its release."""
    import openai._base_client as base

    return getattr(base, "httpx2", None) or base.httpx


def deadline_http_client(**client_kwargs: Any):
    """An HTTP client for ``openai.OpenAI(http_client=...)`` that honours :func:`total_deadline`."""
    httpx = _openai_httpx()
    transport = httpx.HTTPTransport()
    pool = getattr(transport, "_pool", None)
    if not hasattr(pool, "_network_backend"):  # an httpx without it: fail loudly
        raise RuntimeError("the HTTP transport has no network backend to put a deadline on")
    # the pool is httpcore's (or httpcore2's): the module whose classes the backend extends
    httpcore = sys.modules[type(pool).__module__.partition(".")[0]]
    pool._network_backend = _network_classes(httpcore)(pool._network_backend
                                                       or httpcore.SyncBackend())
    return httpx.Client(transport=transport, follow_redirects=True, **client_kwargs)
