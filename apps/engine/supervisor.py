"""The process supervisor of `braid serve`: start children, forward output, stop cleanly."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

from django.core.management.base import CommandError

STOP_GRACE_S = 30.0


def check_port_free(host: str, port: int) -> None:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise CommandError(f"--host {host}: {exc.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


class Child:
    def __init__(self, name: str, argv: list[str], about: str = ""):
        self.name, self.argv, self.about = name, argv, about
        self.proc: subprocess.Popen | None = None
        self.fd: int | None = None  # the read end of its stdout+stderr pipe
        self.partial = b""

    @property
    def returncode(self):
        return self.proc.poll() if self.proc else None

    def group_alive(self) -> bool:
        """Whether a live process is left in the child's own process group.

        Zombies do not count: an orphaned grandchild that was killed stays in the
        group until init reaps it, which some container inits do only slowly.
        """
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        import psutil

        for process in psutil.process_iter(["status"]):
            try:
                if (os.getpgid(process.pid) == self.proc.pid
                        and process.info["status"] != psutil.STATUS_ZOMBIE):
                    return True
            except (ProcessLookupError, PermissionError):
                continue
        return False


def _die_with_parent(parent_pid: int):
    """In the child before exec (Linux): get SIGTERM if `braid serve` itself is killed.

    The kernel sends this signal each time the child is re-parented away from a
    thread of ours, so the supervisor keeps to one thread: a second SIGTERM while
    a qcluster is stopping deadlocks its (non-reentrant) signal handler.
    """

    def prepare():
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except Exception:  # not Linux: the parent's own shutdown still stops children
            return
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return prepare


class Supervisor:
    """Start children in their own process groups, forward their output, stop them cleanly.

    A child gets its own process group so the terminal's Ctrl-C reaches only us: we
    then send SIGTERM to each child's main process only (a qcluster stops its own
    workers; a SIGTERM to its whole group would kill the sentinel mid-stop), wait up
    to STOP_GRACE_S, and SIGKILL the process group of any straggler. One thread
    does it all (a selector over the children's pipes), so output keeps flowing
    while children stop and a killed supervisor signals each child only once.
    """

    def __init__(self, children: list[Child], *, env: dict, cwd: str, out,
                 grace_s: float = STOP_GRACE_S):
        self.children, self.env, self.cwd, self.out = children, env, cwd, out
        self.grace_s = grace_s
        self.selector = selectors.DefaultSelector()
        self.stop: str | bool = False  # the name of the signal that asked us to stop
        self.force = False
        self.stop_seconds = 0.0

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError, RuntimeError):
            pass

    def _emit(self, child: Child, data: bytes) -> None:
        for raw in data.splitlines():
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            self._write(f"{child.name:<8}| {line}\n")

    def pump(self, timeout: float) -> None:
        """Forward whatever the children wrote, waiting up to `timeout` for some."""
        if not self.selector.get_map():
            time.sleep(timeout)
            return
        try:
            events = self.selector.select(timeout)
        except InterruptedError:
            return
        for key, _ in events:
            child = key.data
            try:
                data = os.read(child.fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # every process of the child closed the pipe
                self.selector.unregister(child.fd)
                child.proc.stdout.close()
                if child.partial:
                    self._emit(child, child.partial)
                child.partial = b""
                continue
            complete, newline, child.partial = (child.partial + data).rpartition(b"\n")
            if newline:
                self._emit(child, complete + newline)
            if len(child.partial) > 65536:  # a very long line: forward it in pieces
                self._emit(child, child.partial)
                child.partial = b""

    def start(self) -> None:
        linux = sys.platform.startswith("linux")
        for child in self.children:
            child.proc = subprocess.Popen(
                child.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0,
                preexec_fn=_die_with_parent(os.getpid()) if linux else None)
            child.fd = child.proc.stdout.fileno()  # read raw with os.read, never buffered
            os.set_blocking(child.fd, False)
            self.selector.register(child.fd, selectors.EVENT_READ, child)

    def _on_signal(self, signum, frame):
        # Only flags here: the loop does the printing (no re-entrant writes).
        if self.stop:
            self.force = True
        else:
            self.stop = signal.Signals(signum).name

    def wait(self) -> Child | None:
        """Run until a signal or a child's death; stop all; return the child that died."""
        main = threading.current_thread() is threading.main_thread()
        saved = {}
        if main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                saved[sig] = signal.signal(sig, self._on_signal)
        died = None
        try:
            while not self.stop:
                self.pump(0.2)
                died = next((c for c in self.children if c.returncode is not None), None)
                if died is not None:
                    self._write(f"braid serve: {died.name} exited with code {died.returncode};"
                                f" stopping the others\n")
                    break
            if self.stop:
                self._write(f"braid serve: {self.stop} received, stopping (up to "
                            f"{self.grace_s:g} s; again to force)\n")
            self.shutdown()
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
        return died

    def shutdown(self) -> None:
        started = time.monotonic()
        for child in self.children:
            if child.returncode is None:
                try:
                    child.proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = started + self.grace_s
        while time.monotonic() < deadline and not self.force:
            if all(c.returncode is not None and not c.group_alive() for c in self.children):
                break
            self.pump(0.1)
        if self.force:
            self._write("braid serve: stopping now (SIGKILL)\n")
        for child in self.children:
            if child.returncode is None or child.group_alive():
                why = "forced" if self.force else f"still running after {self.grace_s:g} s"
                self._write(f"braid serve: {child.name} {why}: killing its process group\n")
                try:
                    os.killpg(child.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.proc.wait()
        end = time.monotonic() + 2  # the last lines still in the pipes
        while self.selector.get_map() and time.monotonic() < end:
            self.pump(0.1)
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fd)
            key.data.proc.stdout.close()
        self.selector.close()
        self.stop_seconds = time.monotonic() - started
