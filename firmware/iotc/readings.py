# The default telemetry: board readings available on every port (uptime, free heap), plus Wi-Fi
# RSSI and the chip's internal temperature on an ESP32 when the build has them; and the read-only
# device information reported once per boot (only what the board itself knows).

import gc


def board_readings(uptime):
    gc.collect()
    values = {"uptime": uptime, "freeHeap": gc.mem_free()}
    try:  # Wi-Fi signal strength in dBm
        import network

        signal = network.WLAN(network.STA_IF).status("rssi")
    except Exception:  # no network module, not connected, or no such status on this port
        signal = None
    if signal is not None:
        values["rssi"] = signal
    try:  # internal temperature in degrees Celsius
        import esp32

        try:
            celsius = esp32.mcu_temperature()  # every chip but the original ESP32, whole degrees C
        except AttributeError:
            celsius = round((esp32.raw_temperature() - 32) / 1.8, 1)  # original ESP32 only: degrees F
    except Exception:  # not an ESP32, or no sensor
        celsius = None
    if celsius is not None:
        values["temperature"] = celsius
    return values


def device_info():
    """Read-only properties: firmware and MicroPython versions, the board, its MAC (the Wi-Fi
    station's, else the chip's unique ID)."""
    import sys

    from iotc import VERSION

    info = {
        "firmwareVersion": VERSION,
        "micropythonVersion": "%d.%d.%d" % tuple(sys.implementation.version[:3]),
    }
    board = getattr(sys.implementation, "_machine", None)  # e.g. "Generic ESP32 module with ESP32"
    if board:
        info["board"] = board
    try:
        import network

        raw = network.WLAN(network.STA_IF).config("mac")
    except Exception:  # no network module on this port
        try:
            import machine

            raw = machine.unique_id()
        except Exception:
            raw = None
    if raw:
        info["macAddress"] = ":".join("%02x" % byte for byte in raw)
    return info
