"""Local DPS + IoT Hub emulator: sans-I/O MQTT codec and behaviour, one asyncio + ssl server."""
