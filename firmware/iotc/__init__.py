VERSION = "0.1.0"


class ConfigError(Exception):
    """A setting that cannot work; the message names the field and the fix, never a secret.
    `file` is the on-board file at fault, when known."""

    def __init__(self, message, file=None):
        super().__init__(message)
        self.file = file


def unload(name):
    """Forget submodule `name` so its code can be freed (RAM is scarce on an ESP32); the next
    import loads it again."""
    import sys

    sys.modules.pop("iotc." + name, None)
    globals().pop(name, None)
