"""The byte-stream interface between the console and an agent bridge, shared by local and SSH.

A Transport reaches one host and opens bridges to its agent daemon; a Channel is one such bridge:
a bidirectional byte stream carrying the JSON lines of agents/protocol.py. console/link.py is the
only user; it reads from one thread and writes from others (send must be thread-safe).
"""

from __future__ import annotations

import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable


class Channel(ABC):
    """One bidirectional byte stream to an agent bridge."""

    description: str = "channel"

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Write all of data (thread-safe); raises OSError when the stream is gone."""

    @abstractmethod
    def recv(self, n: int = 65536) -> bytes:
        """Block for up to n bytes; b'' at end of stream (or after close())."""

    @abstractmethod
    def close(self) -> None:
        """Close the stream (idempotent); a blocked recv() returns b''."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once close() ran or the peer ended the stream."""

    def __iter__(self):
        """Chunks of bytes until end of stream."""
        while True:
            chunk = self.recv()
            if not chunk:
                return
            yield chunk


class Transport(ABC):
    """A way to reach one host's agent (a subprocess, an SSH connection)."""

    description: str = "transport"

    @abstractmethod
    def open_bridge(self) -> Channel:
        """Start `python -m agents bridge` (or the zipapp) on the host and return its stdio as a Channel."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; jobs on the host keep running (they live in the daemon)."""


TransportFactory = Callable[[], Transport]


class SocketChannel(Channel):
    """A Channel over a connected socket (socketpair in tests, a unix socket to the daemon)."""

    def __init__(self, sock: socket.socket, description: str = "socket") -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        self._closed = False
        self.description = description

    def send(self, data: bytes) -> None:
        with self._send_lock:
            if self._closed:
                raise OSError("channel closed")
            self._sock.sendall(data)

    def recv(self, n: int = 65536) -> bytes:
        if self._closed:
            return b""
        try:
            data = self._sock.recv(n)
        except OSError:
            data = b""
        if not data:
            self._closed = True
        return data

    def close(self) -> None:
        if self._closed and self._sock.fileno() < 0:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv()
        except OSError:
            pass
        self._sock.close()

    @property
    def closed(self) -> bool:
        return self._closed
