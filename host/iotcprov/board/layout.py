"""The on-board file layout shared with the firmware (docs/design.md, on-board file layout)."""

DATA_DIR = "/iotc-data"  # not /iotc: a plain /iotc folder would shadow the /lib/iotc package
ACTIVE = DATA_DIR + "/active"
ACTIVE_TEMP = DATA_DIR + "/active.tmp"
# Wi-Fi settings live in the identity folder, so the `active` rename switches identity and Wi-Fi
# together. Boards provisioned before kept them in DATA_DIR; the firmware still reads that file
# when the active folder has none.
WIFI_FILE = "wifi.json"
LEGACY_WIFI = DATA_DIR + "/" + WIFI_FILE
ASSIGNMENT = DATA_DIR + "/assignment.json"
IDENTITY_FILE = "identity.json"
IDENTITY_PREFIX = "id-"
FIRMWARE_DIR = "/lib/iotc"
MAIN = "/main.py"
IDENTITY_FORMAT = 1


def identity_dir(folder: str) -> str:
    return f"{DATA_DIR}/{folder}"
