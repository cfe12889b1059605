"""Checking that a file is an ESP firmware image for the board's chip, before anything is written."""

from iotcprov.errors import InputError

ESP_IMAGE_MAGIC = 0xE9


def check_firmware_image(data: bytes, esptool_chip: str, field: str = "--firmware") -> None:
    """Raise InputError unless `data` starts with a well-formed ESP image for `esptool_chip`."""
    from esptool.bin_image import LoadFirmwareImage
    from esptool.targets import CHIP_DEFS

    if len(data) < 24 or data[0] != ESP_IMAGE_MAGIC:
        raise InputError(
            f"{field}: not an ESP firmware image (no 0xE9 header); "
            "download the MicroPython .bin for your board"
        )
    try:
        image = LoadFirmwareImage(esptool_chip, data)
    except Exception as error:  # esptool raises FatalError and struct errors for damaged images
        raise InputError(
            f"{field}: damaged ESP firmware image ({str(error).splitlines()[0][:100]})"
        ) from None
    expected = getattr(CHIP_DEFS[esptool_chip], "IMAGE_CHIP_ID", None)
    chip_id = getattr(image, "chip_id", None)
    if expected is not None and chip_id is not None and chip_id != expected:
        names = {getattr(c, "IMAGE_CHIP_ID", None): n for n, c in CHIP_DEFS.items()}
        raise InputError(
            f"{field}: the image is built for {names.get(chip_id, f'chip id {chip_id}')}, "
            f"not {esptool_chip}; "
            "pick the firmware for this board or the right --board"
        )
