"""Build the agent zipapp: the `agents` package plus a `__main__.py` that runs `agents.__main__`.

Reproducible: entries sorted, fixed timestamps and permissions, no bytecode, so the same source
gives the same bytes and the same sha256 (the console names the deployed file by it).
Python 3.6 compatible, stdlib only.
"""

import hashlib
import os
import zipfile
from typing import List, Optional, Tuple

SHEBANG = b"#!/usr/bin/env python3\n"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
INCLUDE_SUFFIXES = (".py", ".json")
MAIN = b"import sys\nfrom agents.__main__ import main\n\nsys.exit(main())\n"


def package_dir() -> str:
    """The directory of the `agents` package we are running from."""
    return os.path.dirname(os.path.abspath(__file__))


def collect(pkg_dir: Optional[str] = None) -> List[Tuple[str, bytes]]:
    """(archive name, bytes) of every source file of the package, sorted by name."""
    pkg_dir = pkg_dir or package_dir()
    if not os.path.isdir(pkg_dir):
        raise OSError("cannot pack the agent: {} is not a directory (running from a zipapp?)".format(pkg_dir))
    base = os.path.dirname(pkg_dir)
    out = []
    for dirpath, dirnames, filenames in os.walk(pkg_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in filenames:
            if name.endswith(INCLUDE_SUFFIXES) and not name.startswith("."):
                path = os.path.join(dirpath, name)
                arcname = os.path.relpath(path, base).replace(os.sep, "/")
                with open(path, "rb") as f:
                    out.append((arcname, f.read()))
    out.append(("__main__.py", MAIN))
    return sorted(out)


def build_bytes(pkg_dir: Optional[str] = None) -> bytes:
    """The zipapp as bytes (shebang + zip), identical for identical sources."""
    import io

    buf = io.BytesIO()
    buf.write(SHEBANG)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in collect(pkg_dir):
            info = zipfile.ZipInfo(arcname, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, whatever machine builds it
            zf.writestr(info, data)
    return buf.getvalue()


def build_zipapp(out_path: str, pkg_dir: Optional[str] = None) -> str:
    """Write the zipapp to out_path atomically (tmp + rename, mode 0755); returns its sha256 hex."""
    data = build_bytes(pkg_dir)
    digest = hashlib.sha256(data).hexdigest()
    parent = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(parent, exist_ok=True)
    tmp = out_path + ".tmp-{}".format(os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o755)
    os.replace(tmp, out_path)
    return digest
