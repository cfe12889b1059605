"""The virtual board: the MicroPython unix port behind a pty, driven by the real mpremote exactly
like an ESP32 running stock MicroPython, with stand-ins for what the unix port lacks (Wi-Fi, NTP,
machine.unique_id/reset/WDT/RTC, umqtt.simple). See README.md in this folder.
"""

from iotcprov.virtual_board.board import VirtualBoard
from iotcprov.virtual_board.micropython import MicroPythonMissing, find_micropython

__all__ = ["MicroPythonMissing", "VirtualBoard", "find_micropython"]
