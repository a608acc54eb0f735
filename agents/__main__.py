"""`python -m agents ...` / `python agent.pyz ...`: the agent's own command line.

    bridge                      relay stdin/stdout to the daemon (starting it if needed)
    daemon [--foreground]       run the daemon (detached unless --foreground)
    probe [--json]              what this machine can measure
    pack --out PATH             build the agent zipapp, print its sha256
    stop                        ask the running daemon to stop (its jobs end as "stopped")
Python 3.6 compatible, stdlib only.
"""

import argparse
import json
import sys
from typing import Any, Dict, List, Optional


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wattlab-agent", description="wattlab device agent")
    p.add_argument(
        "--home", help="agent state directory (default $WATTLAB_AGENT_HOME or ~/.cache/wattlab/agent)"
    )
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True  # add_subparsers(required=) is 3.7+
    sub.add_parser("bridge", help="relay stdin/stdout to the daemon, starting it if needed")
    d = sub.add_parser("daemon", help="run the per-user daemon")
    d.add_argument("--foreground", action="store_true", help="run in this process instead of detaching")
    d.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="S",
        help="exit after S seconds with no job and no client (default 600)",
    )
    pr = sub.add_parser("probe", help="samplers and devices usable here")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pk = sub.add_parser("pack", help="build the agent zipapp")
    pk.add_argument("--out", required=True, metavar="PATH")
    sub.add_parser("stop", help="stop the running daemon")
    sub.add_parser("loadgen-child", help=argparse.SUPPRESS)  # one loadgen job, isolated (workload_proc)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run one agent command; returns the process exit code."""
    args = _parser().parse_args(argv)
    from agents.daemon import agent_home

    home = args.home or agent_home()
    if args.cmd == "bridge":
        from agents.bridge import run_bridge

        return run_bridge(home)
    if args.cmd == "daemon":
        return _daemon(home, args.foreground, args.idle_exit)
    if args.cmd == "probe":
        return _probe(args.json)
    if args.cmd == "pack":
        from agents.pack import build_zipapp

        try:
            digest = build_zipapp(args.out)
        except OSError as exc:
            sys.stderr.write("wattlab-agent pack: {}\n".format(exc))
            return 1
        print("{}  {}".format(digest, args.out))
        return 0
    if args.cmd == "stop":
        return _stop(home)
    if args.cmd == "loadgen-child":
        from agents.workload_proc import child_main

        return child_main()
    return 2


def _daemon(home: str, foreground: bool, idle_exit: Optional[float]) -> int:
    from agents.daemon import DaemonError, run_daemon

    if not foreground:
        import os

        from agents.bridge import ensure_daemon

        if idle_exit is not None:
            os.environ["WATTLAB_AGENT_IDLE_EXIT_S"] = str(idle_exit)
        try:
            ensure_daemon(home).close()
        except Exception as exc:
            sys.stderr.write("wattlab-agent daemon: {}\n".format(exc))
            return 1
        print("agent daemon running for {}".format(home))
        return 0
    try:
        run_daemon(home, idle_exit)
    except DaemonError as exc:
        sys.stderr.write("wattlab-agent daemon: {}\n".format(exc))
        return 1
    return 0


def _probe(as_json: bool) -> int:
    from agents.server import probe_info

    info = probe_info()
    if as_json:
        print(json.dumps(info, indent=1, sort_keys=True))
        return 0
    print("wattlab agent {} on {} (Python {})".format(info["agent_version"], info["host"], info["python"]))
    for name, reason in sorted(info["samplers"].items()):
        print("  sampler {:<11} {}".format(name, "ok" if reason is None else "unavailable: " + str(reason)))
    for dev in info["devices"]:
        print("  device  {:<30} {} ({})".format(dev.get("id"), dev.get("name") or "", dev.get("sampler")))
    return 0


def request_once(
    home: str, op: str, args: Optional[Dict[str, Any]] = None, timeout: float = 15.0
) -> Optional[Dict[str, Any]]:
    """Send one request to the running daemon; its reply/error message, or None when none runs."""
    from agents import protocol
    from agents.daemon import connect

    sock = connect(home)
    if sock is None:
        return None
    sock.settimeout(timeout)
    try:
        sock.sendall(protocol.encode(protocol.request(1, op, args)))
        reader = protocol.LineReader()
        while True:
            data = sock.recv(65536)
            if not data:
                return None
            for msg in reader.feed(data):
                if isinstance(msg, dict) and msg.get("type") in ("reply", "error") and msg.get("id") == 1:
                    return msg
    finally:
        sock.close()


def _stop(home: str) -> int:
    msg = request_once(home, "shutdown")
    if msg is None:
        print("no agent daemon running for {}".format(home))
        return 0
    if msg.get("type") == "error":
        sys.stderr.write("wattlab-agent stop: {}\n".format(msg.get("message")))
        return 1
    print("agent daemon stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
