"""One error base class for the console: says what went wrong, where, and how to fix it."""

from __future__ import annotations


class WattlabError(Exception):
    """A user-facing error. The CLI prints `str(err)` to stderr (no traceback) and exits `exit_code`."""

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            text += f"\n  hint: {self.fix}"
        return text


class UsageError(WattlabError):
    """Bad input from the user (unknown device id, bad number...): exit 2 like a CLI usage error."""

    exit_code = 2


class ProfileError(WattlabError):
    """A malformed or inconsistent file under profiles/ (names file, key and line where known)."""

    exit_code = 2

    def __init__(self, what: str, *, path: str, key: str | None = None, line: int | None = None,
                 fix: str | None = None) -> None:
        self.path = path
        self.key = key
        self.line = line
        where = path + (f":{line}" if line is not None else "") + (f" [{key}]" if key else "")
        super().__init__(what, where=where, fix=fix)


class HostError(WattlabError):
    """A host that cannot be reached, refuses us, or lacks what the agent needs."""

    def __init__(self, host: str, what: str, *, fix: str | None = None) -> None:
        self.host = host
        super().__init__(what, where=f"host {host}", fix=fix)


class HostKeyError(HostError):
    """An unknown or changed SSH host key: refused, never silently accepted."""

    exit_code = 3


class AgentError(WattlabError):
    """An error reply from a device agent (carries the protocol error code)."""

    def __init__(self, host: str, code: str, message: str) -> None:
        self.host = host
        self.code = code
        super().__init__(f"{code}: {message}", where=f"agent on {host}")
