"""iotcprov: provision ESP32 MicroPython boards for Azure IoT Central."""

__version__ = "0.1.0"
