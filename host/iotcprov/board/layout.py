"""The on-board file layout shared with the firmware (docs/design.md, on-board file layout)."""

DATA_DIR = "/iotc-data"  # not /iotc: a plain /iotc folder would shadow the /lib/iotc package
ACTIVE = DATA_DIR + "/active"
ACTIVE_TEMP = DATA_DIR + "/active.tmp"
WIFI = DATA_DIR + "/wifi.json"
ASSIGNMENT = DATA_DIR + "/assignment.json"
IDENTITY_FILE = "identity.json"
IDENTITY_PREFIX = "id-"
FIRMWARE_DIR = "/lib/iotc"
MAIN = "/main.py"
IDENTITY_FORMAT = 1


def identity_dir(folder: str) -> str:
    return f"{DATA_DIR}/{folder}"
