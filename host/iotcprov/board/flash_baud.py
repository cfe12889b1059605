"""The serial speed `flash` writes at: connect at the ROM loader's 115200, then ask esptool's stub
for the fastest rate the board profile allows (`flash_baud`, 921600 on every ESP32-family bridge
iotcprov knows) or the one `--baud` names, and step down when a line cannot hold it."""

from iotcprov.errors import InputError

ROM_BAUD = 115200
# Rates every USB-UART bridge of the board profiles (CP210x, CH340/CH9102, FT232R) carries; the
# fall-back steps, fastest first.
STANDARD_RATES = (921600, 460800, 230400, 115200)
FALLBACK_RATES = (460800, 115200)
DEFAULT_FLASH_BAUD = 921600


def parse_baud(text: str, field: str = "--baud") -> int:
    """'921600' -> 921600; only the rates esptool's stub and the bridges share."""
    try:
        baud = int(str(text).strip())
    except ValueError:
        baud = 0
    if baud not in STANDARD_RATES:
        rates = ", ".join(str(rate) for rate in STANDARD_RATES)
        raise InputError(f"{field}: {text!r} is not a flashing speed; choose one of {rates}")
    return baud


def flash_rates(profile: dict, baud: int | None = None) -> list[int]:
    """The speeds to try, fastest first: `baud` (an explicit --baud) or the profile's `flash_baud`,
    then the lower fall-back rates down to the ROM's 115200."""
    first = baud if baud is not None else (profile.get("flash_baud") or DEFAULT_FLASH_BAUD)
    return [first, *(rate for rate in FALLBACK_RATES if rate < first)]
