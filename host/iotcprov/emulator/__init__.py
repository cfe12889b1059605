"""Local DPS + IoT Hub emulator: sans-I/O MQTT codec and behaviour, one asyncio + ssl server.

Tests and tools use `Emulator.running(data_dir, ...)` (a separate server process) and its
`admin` client; see docs/emulator.md.
"""

from iotcprov.emulator.client import AdminClient, Emulator

__all__ = ["AdminClient", "Emulator"]
