# The default telemetry: board readings available on every port (uptime, free heap), plus Wi-Fi
# RSSI and the chip's internal temperature on an ESP32 when the build has them; and the read-only
# device information reported once per boot (only what the board itself knows).

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


def mac_address():
    """The Wi-Fi station MAC ('aa:bb:cc:dd:ee:ff'), else the chip's unique ID, or None."""
    try:
        import network

        raw = network.WLAN(network.STA_IF).config("mac")
    except Exception:  # no network module on this port
        try:
            import machine

            raw = machine.unique_id()
        except Exception:
            return None
    return ":".join("%02x" % byte for byte in raw)


def device_info():
    """Read-only properties: firmware and MicroPython versions, the board, its MAC."""
    import sys

    from iotc import VERSION

    info = {
        "firmwareVersion": VERSION,
        "micropythonVersion": "%d.%d.%d" % tuple(sys.implementation.version[:3]),
    }
    board = getattr(sys.implementation, "_machine", None)  # e.g. "Generic ESP32 module with ESP32"
    if board:
        info["board"] = board
    mac = mac_address()
    if mac:
        info["macAddress"] = mac
    return info
