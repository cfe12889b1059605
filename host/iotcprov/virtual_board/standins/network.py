# `network` stand-in with the ESP32 interface (as v1.23-v1.28 have it): the station joins at once
# and reports an address on the host's loopback network, unless a fault says otherwise:
# - wifi_fail: this join fails for good (status STAT_NO_AP_FOUND until the next connect());
# - wifi_no_ap=N: the driver's first N scans find no access point, then one does. As on an ESP32,
#   status() reports STAT_NO_AP_FOUND while the driver is still retrying (ports/esp32/network_wlan.c
#   returns the last disconnect reason, and reconnects are unlimited by default), so that status
#   alone does not end a join.
import time

import _vboard

SCAN_MS = 500  # one scan of the stand-in's driver

STA_IF = 0
AP_IF = 1

STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204

AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4

_hostname = "esp32"
_interfaces = {}


def _missed_scans():
    # wifi_no_ap: every scan it still owes misses; "always" never finds the access point.
    if _vboard.faults().get("wifi_no_ap") == "always":
        return 1 << 30
    scans = 0
    while scans < 1000 and _vboard.fault_active("wifi_no_ap"):
        scans += 1
    return scans


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    _hostname = name


class WLAN:
    def __new__(cls, interface_id=STA_IF):
        # ESP32 returns the same object for each interface.
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        wlan = _interfaces.get(interface_id)
        if wlan is None:
            wlan = object.__new__(cls)
            wlan._setup(interface_id)
            _interfaces[interface_id] = wlan
        return wlan

    def __init__(self, interface_id=STA_IF):
        pass

    def _setup(self, interface_id):
        self._if = interface_id
        self._active = False
        self._status = STAT_IDLE
        self._join_at = None  # while the driver retries: when a scan will find the access point
        self._ssid = ""
        mac = bytearray(bytes.fromhex(_vboard.config["mac"]))
        if interface_id == AP_IF:
            mac[5] = (mac[5] + 1) & 0xFF  # the ESP32 soft-AP MAC is the base MAC + 1
            self._addr = ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
        else:
            self._addr = ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        self._mac = bytes(mac)
        self._config = {"channel": 1, "txpower": 20, "reconnects": -1, "pm": 1}

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        self._active = bool(is_active)
        if not self._active and self._if == STA_IF:
            self.disconnect()

    def _require_active(self):
        if not self._active:
            raise OSError("Wifi Not Started")

    def connect(self, ssid=None, key=None, *, bssid=None):
        self._require_active()
        if self._if != STA_IF:
            raise OSError("Wifi Invalid Mode")
        if ssid is not None:
            self._ssid = ssid
        if _vboard.fault_active("wifi_fail"):
            self._status = STAT_NO_AP_FOUND
            self._addr = ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
            return
        scans = _missed_scans()
        if scans:
            self._status = STAT_CONNECTING
            self._join_at = time.ticks_add(time.ticks_ms(), scans * SCAN_MS)
            return
        self._joined()

    def _joined(self):
        self._join_at = None
        self._status = STAT_GOT_IP
        self._addr = ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def _retrying(self):
        # The driver's scans run in the background: each status query sees how far they got.
        if self._join_at is None:
            return
        left = time.ticks_diff(self._join_at, time.ticks_ms())
        if left <= 0:
            self._joined()
        elif self._status == STAT_CONNECTING:
            self._status = STAT_NO_AP_FOUND  # the first scan missed; the driver tries again

    def disconnect(self):
        if self._if == STA_IF:
            self._join_at = None
            self._status = STAT_IDLE
            self._addr = ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def isconnected(self):
        if self._if == STA_IF:
            self._retrying()
            return self._active and self._status == STAT_GOT_IP
        return self._active

    def status(self, param=None):
        if param is None:
            self._retrying()
            return self._status if self._if == STA_IF else STAT_IDLE
        if param == "rssi":
            if not self.isconnected():
                raise OSError("Wifi Not Connected")
            return -45
        if param == "stations":
            return []
        raise ValueError("unknown status param")

    def scan(self):
        self._require_active()
        return []

    def ifconfig(self, config=None):
        if config is None:
            return self._addr
        self._addr = tuple(config)

    def ipconfig(self, *names, **values):
        if values:
            if "addr4" in values:
                ip, mask = values["addr4"]
                self._addr = (ip, mask) + self._addr[2:]
            return None
        if len(names) != 1:
            raise TypeError("can query only one param")
        name = names[0]
        if name == "addr4":
            return self._addr[:2]
        if name == "gw4":
            return self._addr[2]
        if name == "dhcp4":
            return True
        raise ValueError("unexpected key")

    def config(self, *names, **values):
        if values:
            for name, value in values.items():
                if name in ("ssid", "essid"):
                    self._ssid = value
                elif name == "hostname" or name == "dhcp_hostname":
                    hostname(value)
                elif name == "mac":
                    self._mac = bytes(value)
                else:
                    self._config[name] = value
            return None
        if len(names) != 1:
            raise TypeError("can query only one param")
        name = names[0]
        if name == "mac":
            return self._mac
        if name in ("ssid", "essid"):
            return self._ssid
        if name in ("hostname", "dhcp_hostname"):
            return _hostname
        if name in self._config:
            return self._config[name]
        raise ValueError("unknown config param")
