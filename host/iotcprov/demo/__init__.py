"""`iotcprov demo` as a service: the whole product working offline.

The local DPS + IoT Hub emulator and a virtual ESP32 start; a SAS (or X.509) enrollment is made;
the board is provisioned and deployed exactly as a real one; it boots, registers, connects, sends
telemetry, acknowledges a writable property and answers a command, each checked in the emulator's
records; then everything stops. `run_demo(DemoOptions(...), on_event=...)` returns a DemoSummary.
"""

from iotcprov.demo.run import (
    DemoFailed,
    DemoOptions,
    DemoSummary,
    DemoUnavailable,
    check_platform,
    run_demo,
    serve_kept,
)
from iotcprov.demo.timeline import BOARD, CLOUD, HOST, DemoEvent

__all__ = [
    "BOARD",
    "CLOUD",
    "HOST",
    "DemoEvent",
    "DemoFailed",
    "DemoOptions",
    "DemoSummary",
    "DemoUnavailable",
    "check_platform",
    "run_demo",
    "serve_kept",
]
