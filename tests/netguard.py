"""A network guard that records, never refuses: every attempt to resolve a name, open an internet socket, connect,
send or bind off the loopback, seen through Python's audit hooks (PEP 578), so that an attempt a library catches and
swallows is still seen.

Refusing instead (the previous guard made ``getaddrinfo`` raise) hides exactly what matters: a library's telemetry
catches the error and carries on, and the test passes. Here nothing at the call site changes; the test fails
afterwards if anything was recorded.

``install()`` adds the hook once per process (audit hooks cannot be removed); :meth:`NetRecorder.recording` turns it
on for a block. A process forked while recording (multiprocessing's default on Linux: OpenVINO's telemetry sends
from one) inherits the hook and appends its attempts to ``log`` (a file the parent reads back), as does a child
Python that runs ``python -c 'import netguard; netguard.install(log).start()' ...`` (see ``child_prelude``).
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Iterator

EVENTS = frozenset({
    "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.connect", "socket.sendto",
    "socket.sendmsg", "socket.bind", "socket.__new__",
})
_LOCAL_NAMES = {None, "", "localhost", b"localhost"}


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _family(sock) -> int | None:
    try:
        return sock.family
    except Exception:  # a socket object half-built inside __new__
        return None


def offending(event: str, args: tuple) -> str | None:
    """A one-line description of the attempt, or None when it stays on this machine (AF_UNIX, loopback)."""
    if event == "socket.__new__":
        _, family, type_, _ = args
        family = socket.AF_INET if family == -1 else family
        if family in (socket.AF_INET, socket.AF_INET6):
            return f"internet socket opened (family {socket.AddressFamily(family).name}, type {type_})"
        return None
    if event == "socket.getaddrinfo":
        host, port = args[0], args[1]
        return None if _is_loopback(host) else f"name resolution {host!r} port {port}"
    if event in ("socket.gethostbyname", "socket.gethostbyaddr"):
        return None if _is_loopback(args[0]) else f"{event.split('.')[1]} {args[0]!r}"
    sock, address = args[0], args[1]  # connect, sendto, sendmsg, bind
    if _family(sock) == socket.AF_UNIX or isinstance(address, (str, bytes)):
        return None
    if event == "socket.sendmsg" and address is None:
        return None  # on an already connected socket: the connect was seen
    host = address[0] if isinstance(address, tuple) and address else address
    return None if _is_loopback(host) else f"{event.split('.')[1]} to {address!r}"


class NetRecorder:
    def __init__(self, log: str | os.PathLike | None = None):
        self.attempts: list[dict] = []
        self.active = False
        self.log = None if log is None else os.fspath(log)
        self._pid = os.getpid()
        self._local = threading.local()  # .busy: this thread is inside the hook
        self._child = False
        self._pending: dict[int, dict] = {}  # internet sockets not (yet) seen bound or connected to the loopback

    # -- the hook --------------------------------------------------------------------------------------------
    def _hook(self, event: str, args: tuple) -> None:
        if not self.active or event not in EVENTS or getattr(self._local, "busy", False):
            return
        self._local.busy = True  # what the hook itself does (formatting, writing the log) is not recorded
        try:
            what = offending(event, args)
            if event == "socket.__new__":
                # an internet socket counts unless it is then bound or connected to the loopback only (urllib3,
                # for one, probes IPv6 support at import by binding a socket to ::1)
                if what is not None:
                    self._pending[id(args[0])] = self._entry(event, what)
                return
            if event in ("socket.bind", "socket.connect") and what is None:
                self._pending.pop(id(args[0]), None)
            if what is not None:
                if not event.startswith(("socket.getaddr", "socket.gethost")):
                    self._pending.pop(id(args[0]), None)  # the socket's own use is recorded instead
                entry = self._entry(event, what)
                self.attempts.append(entry)
                if self.log is not None and (self._child or os.getpid() != self._pid):
                    fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    try:
                        os.write(fd, (json.dumps(entry) + "\n").encode())
                    finally:
                        os.close(fd)
        except Exception:  # the guard must never change what the code under test does
            pass
        finally:
            self._local.busy = False

    @staticmethod
    def _entry(event: str, what: str) -> dict:
        stack = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack()[-10:-2]]
        return {"event": event, "what": what, "pid": os.getpid(), "stack": stack}

    # -- control ----------------------------------------------------------------------------------------------
    def start(self) -> "NetRecorder":
        self.active = True
        return self

    def stop(self) -> None:
        self.active = False

    @contextlib.contextmanager
    def recording(self) -> Iterator["NetRecorder"]:
        """Record within the block (``attempts`` and the log are emptied first)."""
        self.attempts.clear()
        self._pending.clear()
        if self.log is not None:
            Path(self.log).unlink(missing_ok=True)
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def all_attempts(self) -> list[dict]:
        """This process's attempts and those its children logged."""
        found = self.attempts + list(self._pending.values())
        if self.log is not None and os.path.exists(self.log):
            found += [json.loads(line) for line in Path(self.log).read_text().splitlines() if line.strip()]
        return found

    def report(self) -> str:
        lines = []
        for a in self.all_attempts():
            lines.append(f"{a['what']} (pid {a['pid']})")
            lines += [f"    {s}" for s in a["stack"][-5:]]
        return "\n".join(lines)


_RECORDER: NetRecorder | None = None


def install(log: str | os.PathLike | None = None, *, child: bool = False) -> NetRecorder:
    """The process's recorder, its audit hook added on the first call; ``log``: where forked children (or, with
    ``child=True``, this process too) append what they see."""
    global _RECORDER
    if _RECORDER is None:
        _RECORDER = NetRecorder(log)
        sys.addaudithook(_RECORDER._hook)
    elif log is not None:
        _RECORDER.log = os.fspath(log)
    _RECORDER._child = child
    return _RECORDER


def child_prelude(log: str | os.PathLike) -> str:
    """Python source that a child interpreter runs first to record into ``log``."""
    here = os.path.dirname(os.path.abspath(__file__))
    return (f"import sys; sys.path.insert(0, {here!r}); import netguard; "
            f"netguard.install({os.fspath(log)!r}, child=True).start()\n")
