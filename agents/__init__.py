"""wattlab device agent: stdlib-only, runs on CPython >= 3.6 (JetPack 4 ships 3.6).

This package is shipped to each device as one content-hashed zipapp. Nothing in it may import
anything outside the standard library at module level; `pynvml` and `jtop` are imported lazily
inside their own samplers.
"""

AGENT_VERSION = "0.1.0"
