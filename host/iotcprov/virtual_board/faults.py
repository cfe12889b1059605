"""Fault injection for the stand-ins, through `faults.json` in the board's state folder.

The file is written by the host only (atomically); the stand-ins re-read it whenever it changes and
keep their own count of failures already served in `fault-counts.json`, which restarts whenever
the fault set is written again (a new `generation`).

    wifi_fail     N or "always": the next N `WLAN.connect()` calls fail (status STAT_NO_AP_FOUND)
    wifi_no_ap    N or "always": the Wi-Fi driver's next N scans find no access point; meanwhile
                  status() says STAT_NO_AP_FOUND while the driver retries, as on an ESP32
    ntp_fail      N or "always": the next N `ntptime.settime()`/`time()` calls raise OSError(ETIMEDOUT)
    clock_unset   true: until something sets the clock, the board reads 2000-01-01 + uptime
    power_cut_write  N >= 1: the power fails in the middle of the board's Nth file write from now
                  (an open for writing or appending): half the data of its first write reaches
                  the file, then the board is off, as after power_off(), until power_on()
"""

import contextlib
import json
import os
from pathlib import Path

from iotcprov.errors import InputError

COUNT_FAULTS = ("wifi_fail", "wifi_no_ap", "ntp_fail")
FLAG_FAULTS = ("clock_unset",)
AT_FAULTS = ("power_cut_write",)
FAULTS_FILE = "faults.json"


def check_faults(faults: dict) -> dict:
    """Normalise a fault set: counts become int or "always", flags bool; unknown names are refused."""
    checked: dict = {}
    for name, value in faults.items():
        if name in COUNT_FAULTS:
            if value is True or value == "always":
                checked[name] = "always"
            elif value is False or value is None:
                checked[name] = 0
            elif isinstance(value, int) and value >= 0:
                checked[name] = value
            elif isinstance(value, str) and value.isdigit():
                checked[name] = int(value)
            else:
                raise InputError(
                    f"--fault {name}: {value!r} is not a count; give a number of failures or 'always'"
                )
        elif name in AT_FAULTS:
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"--fault {name}: {value!r} is not a count; give which write to cut, from 1")
            checked[name] = value
        elif name in FLAG_FAULTS:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise InputError(f"--fault {name}: {value!r} is not true or false")
                value = value.lower() in ("true", "1", "yes")
            checked[name] = bool(value)
        else:
            known = ", ".join(COUNT_FAULTS + FLAG_FAULTS + AT_FAULTS)
            raise InputError(f"--fault: unknown fault {name!r}; choose from {known}")
    return checked


def parse_fault_arguments(items: list[str]) -> dict:
    """`NAME=VALUE` or `NAME` (= always / true) from the command line."""
    faults: dict = {}
    for item in items:
        name, sep, value = item.partition("=")
        faults[name.strip()] = value.strip() if sep else True
    return check_faults(faults)


def write_faults(state_directory: Path, faults: dict) -> dict:
    """Replace the board's fault set (counts restart). Returns what was written."""
    path = Path(state_directory) / FAULTS_FILE
    generation = 1
    with contextlib.suppress(OSError, ValueError, AttributeError):
        generation = int(json.loads(path.read_text()).get("generation", 0)) + 1
    document = {"generation": generation, **check_faults(faults)}
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(document))
    os.replace(temp, path)
    return document
