"""The fault tools themselves behave as advertised (so a fault test that passes means something)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.faults import NetNamespace, TcpRelay, can_make_netns


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            def echo(c: socket.socket = conn) -> None:
                with c:
                    try:
                        while data := c.recv(4096):
                            c.sendall(data)
                    except OSError:  # the relay's reset reaches the server too
                        return
            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_relay_adds_the_configured_delay_each_way():
    srv, port = _echo_server()
    with TcpRelay(("127.0.0.1", port), delay_ms=50) as relay, socket.create_connection(
        ("127.0.0.1", relay.port)
    ) as c:
        t0 = time.monotonic()
        c.sendall(b"ping")
        assert c.recv(16) == b"ping"
        rtt = time.monotonic() - t0
    srv.close()
    assert 0.09 <= rtt < 1.0, rtt


def test_relay_reset_cuts_live_connections():
    srv, port = _echo_server()
    with TcpRelay(("127.0.0.1", port)) as relay:
        c = socket.create_connection(("127.0.0.1", relay.port))
        c.sendall(b"x")
        assert c.recv(1) == b"x"
        assert relay.reset_all() == 1
        c.settimeout(2)
        with pytest.raises(OSError):
            c.sendall(b"y" * 100000)
            if not c.recv(1):
                raise ConnectionResetError("eof")
        c.close()
    srv.close()


def test_relay_freeze_holds_bytes_until_thaw():
    srv, port = _echo_server()
    with TcpRelay(("127.0.0.1", port)) as relay, socket.create_connection(("127.0.0.1", relay.port)) as c:
        relay.freeze()
        c.sendall(b"held")
        c.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.recv(16)
        relay.thaw()
        c.settimeout(2)
        assert c.recv(16) == b"held"
    srv.close()


@pytest.mark.netns
def test_namespace_link_down_partitions_and_up_heals():
    reason = can_make_netns()
    if reason:
        pytest.fail(f"netns fault tests must run here: {reason}")
    with NetNamespace() as ns:
        server = subprocess.Popen(ns.exec_argv([sys.executable, "-c", (
            "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
            f"s.bind(('{ns.ns_addr}',7777));s.listen(8)\n"
            "while True:\n c,_=s.accept();c.sendall(b'hi');c.close()")]))
        try:
            deadline = time.monotonic() + 5
            while True:
                try:
                    with socket.create_connection((ns.ns_addr, 7777), timeout=1) as c:
                        assert c.recv(2) == b"hi"
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            ns.down()
            with pytest.raises(OSError):
                socket.create_connection((ns.ns_addr, 7777), timeout=0.5)
            ns.up()
            time.sleep(0.2)
            with socket.create_connection((ns.ns_addr, 7777), timeout=2) as c:
                assert c.recv(2) == b"hi"
        finally:
            server.kill()
            server.wait()
