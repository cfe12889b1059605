"""The firmware's own rules for identity.json's "options", applied on the host.

A board checks its options at boot and stops with `iotc: config error` when one is out of range;
checking them here, with the very code the board runs (firmware/iotc/config.py, pure Python),
refuses the same values before anything is written, and names the --option at fault. The host
is stricter in one way: an unknown name is refused (a typo the board would silently ignore).
"""

import importlib.util
import sys
import types
from functools import cache

from iotcprov import resources
from iotcprov.errors import InputError

# Options the firmware reads outside its table of whole-number options.
_OTHER_OPTIONS = ("ntp_servers", "watchdog")


class _FirmwareConfigError(Exception):
    """Stands in for iotc.ConfigError: the one name config.py takes from its package."""


@cache
def _firmware_config() -> types.ModuleType:
    # Loaded under a private name, with a stand-in for its package, so another `iotc` installed
    # on the host (Microsoft's IoT Central client is one) is neither used nor disturbed.
    path = resources.firmware_dir() / "iotc" / "config.py"
    spec = importlib.util.spec_from_file_location("iotcprov._firmware_config", path)
    if spec is None or spec.loader is None:
        raise InputError(f"the firmware's {path} is missing; reinstall iotcprov")
    module = importlib.util.module_from_spec(spec)
    package = types.ModuleType("iotc")
    package.ConfigError = _FirmwareConfigError  # type: ignore[attr-defined]
    saved = sys.modules.get("iotc")
    sys.modules["iotc"] = package
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["iotc"]
        else:
            sys.modules["iotc"] = saved
    return module


def option_names() -> list[str]:
    """Every option the bundled firmware reads."""
    return [row[0] for row in _firmware_config().OPTIONS] + list(_OTHER_OPTIONS)


def check_options(options: dict, field: str = "--option") -> None:
    """Raise InputError, naming the option and its allowed values, where the firmware would refuse."""
    known = option_names()
    for name in options:
        if name not in known:
            raise InputError(f"{field} {name}: no such firmware option; use one of: {', '.join(known)}")
    config = _firmware_config()
    try:
        config.options(dict(options))
    except _FirmwareConfigError as error:
        message = str(error.args[0]).removesuffix(config.FIX).replace("options.", "")
        raise InputError(f"{field} {message}") from None
