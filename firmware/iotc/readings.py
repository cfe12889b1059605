# The default telemetry: board readings available on every port (uptime, free heap), plus Wi-Fi
# RSSI and the chip's internal temperature on an ESP32 when the build has them.

import gc


def rssi():
    """Wi-Fi signal strength in dBm, or None."""
    try:
        import network

        return network.WLAN(network.STA_IF).status("rssi")
    except Exception:  # no network module, not connected, or no such status on this port
        return None


def temperature():
    """Internal temperature in degrees Celsius, or None."""
    try:
        import esp32
    except ImportError:
        return None
    try:
        return esp32.mcu_temperature()  # S2, S3, C3, C6
    except AttributeError:
        pass
    try:
        return round((esp32.raw_temperature() - 32) / 1.8, 1)  # classic ESP32: Fahrenheit
    except Exception:
        return None


def board_readings(uptime_s):
    gc.collect()
    values = {"uptime": uptime_s, "freeHeap": gc.mem_free()}
    signal = rssi()
    if signal is not None:
        values["rssi"] = signal
    celsius = temperature()
    if celsius is not None:
        values["temperature"] = celsius
    return values
