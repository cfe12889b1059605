"""Run the iotcprov CLI with what Windows lacks taken away from iotcprov's own code.

    python tests/as_windows.py [--pretend-windows] --all-help
    python tests/as_windows.py [--pretend-windows] ARGS...      # as `iotcprov ARGS...`

The host tool must import and run on Windows and macOS; only the virtual board needs Linux. Here,
on Linux, a code path of iotcprov that reaches for a POSIX-only facility fails loudly:

- importing a POSIX-only module (pty, termios, tty, fcntl, resource, grp, pwd) or ctypes (whose
  `CDLL(None)` libc calls exist on Linux only) from an iotcprov module raises ImportError;
- reading a POSIX-only attribute (os.killpg, os.setsid, signal.SIGKILL, select.poll, ...) from an
  iotcprov module raises AttributeError.

Only iotcprov's own code is refused: the libraries it uses (pyserial, mpremote, esptool) pick their
Windows modules themselves on Windows, and their POSIX ones here. `--pretend-windows` also makes
`platform.system()` say Windows, so the virtual board and the demo explain what they need.
`--all-help` builds the full parser and runs `--help` of every command; it prints each command
line it checked.
"""

import contextlib
import importlib.abc
import io
import platform
import sys
import types

BLOCKED_MODULES = {"pty", "termios", "tty", "fcntl", "resource", "grp", "pwd", "ctypes"}
BLOCKED_ATTRIBUTES = {
    "os": {"killpg", "getpgid", "setsid", "setpgid", "fork", "forkpty", "openpty", "getuid", "geteuid",
           "getppid", "ttyname", "pidfd_open", "mkfifo", "sched_getaffinity"},
    "signal": {"SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGALRM", "SIGPIPE",
               "alarm", "pause", "setitimer", "siginterrupt", "pthread_kill", "pthread_sigmask"},
    "select": {"poll", "epoll", "kqueue"},
}  # fmt: skip


def _caller_is_iotcprov(depth: int) -> bool:
    """Is the code `depth` frames up (import machinery skipped) part of iotcprov?"""
    frame = sys._getframe(depth)
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib")
        or frame.f_code.co_filename.endswith(("importlib/__init__.py", "importlib\\__init__.py"))
    ):
        frame = frame.f_back
    return frame is not None and str(frame.f_globals.get("__name__", "")).startswith("iotcprov")


class _RefusePosixModules(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED_MODULES and _caller_is_iotcprov(2):
            raise ImportError(f"{name} is POSIX-only (not on Windows); iotcprov imported it", name=name)
        return None


class _GuardedModule(types.ModuleType):
    """Stands in for `os`, `signal` or `select`: everything but the POSIX-only names passes through."""

    def __init__(self, real: types.ModuleType, blocked: set[str]) -> None:
        super().__init__(real.__name__, real.__doc__)
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_blocked", blocked)

    def __getattribute__(self, name: str):
        if name in ("_real", "_blocked", "__class__", "__dict__"):
            return object.__getattribute__(self, name)
        if name in object.__getattribute__(self, "_blocked") and _caller_is_iotcprov(2):
            real = object.__getattribute__(self, "_real").__name__
            raise AttributeError(f"{real}.{name} is POSIX-only (not on Windows); iotcprov used it")
        return getattr(object.__getattribute__(self, "_real"), name)

    def __setattr__(self, name: str, value) -> None:
        setattr(object.__getattribute__(self, "_real"), name, value)


def install() -> None:
    if any(module.startswith("iotcprov") for module in sys.modules):
        raise RuntimeError("install() must run before iotcprov is imported")
    sys.meta_path.insert(0, _RefusePosixModules())
    for module_name, blocked in BLOCKED_ATTRIBUTES.items():
        real = importlib.import_module(module_name)
        sys.modules[module_name] = _GuardedModule(real, blocked)


def pretend_windows() -> None:
    platform.system = lambda: "Windows"
    platform.machine = lambda: "AMD64"


def all_help() -> int:
    from iotcprov.cli import build_parser
    from iotcprov.cli.reference import walk

    for parser, _summary in walk(build_parser()):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            build_parser().parse_args([*parser.prog.split()[1:], "--help"])
        if f"usage: {parser.prog}" not in out.getvalue():
            print(f"no help for: {parser.prog}", file=sys.stderr)
            return 1
        print(parser.prog)
    return 0


def main(argv: list[str]) -> int:
    install()
    if argv[:1] == ["--pretend-windows"]:
        pretend_windows()
        argv = argv[1:]
    if argv == ["--all-help"]:
        return all_help()
    from iotcprov.cli import main as iotcprov

    return iotcprov(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
