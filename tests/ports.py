"""A free loopback port, for a server a test starts later on that number.

A port the kernel hands out for `bind(0)` comes from its ephemeral range (Linux's default:
32768-60999), the range it also takes source ports from for outgoing connections. Between
that probe and the server's own bind, a connection made by another test worker may take the
port, and the server then stops with "port already in use" (seen once in CI: the web view's
`WEB_PORT` in tests/web/test_browser.py). A port below the ephemeral range is never given to
a connection unasked: one is picked at random there, and checked free by binding it.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    below = _ephemeral_start()
    if below - LOWEST < 1000:  # too narrow a range below it: the kernel's choice, as before
        return _any_port()
    pick = random.SystemRandom()
    for _ in range(100):
        port = pick.randrange(LOWEST, below)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return _any_port()


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _any_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
