"""QR code labels (PNG, segno) for provisioned devices.

A label holds the ID scope and the device ID as compact JSON, e.g.
`{"scope":"0ne00ABCDEF","device":"line3-001"}`, plus `"model"` when the device has one. The
device key goes on the label only when asked for by name (`--label-include-key`, SAS only); such
a file is created 0600, like any other key file.
"""

import io
import json
from pathlib import Path

import segno
from iotcprov.outputs import OutputFile, write_outputs

LABEL_SCALE = 8  # pixels per module: about 2.5 cm at 300 dpi for a short ID
LABEL_BORDER = 2


def label_payload(
    id_scope: str, device_id: str, model_id: str | None = None, device_key: str | None = None
) -> str:
    data = {"scope": id_scope, "device": device_id}
    if model_id:
        data["model"] = model_id
    if device_key is not None:
        data["key"] = device_key
    return json.dumps(data, separators=(",", ":"))


def label_png(payload: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(
        buffer, kind="png", scale=LABEL_SCALE, border=LABEL_BORDER
    )
    return buffer.getvalue()


def label_path(folder: Path, device_id: str) -> Path:
    return folder / f"{device_id}.png"


def write_label(
    folder: Path, id_scope: str, device_id: str, model_id: str | None = None, device_key: str | None = None
) -> Path:
    """Write (or replace: a re-provisioned board gets a fresh label) the device's label."""
    path = label_path(folder, device_id)
    payload = label_payload(id_scope, device_id, model_id, device_key)
    write_outputs(
        [OutputFile(path, label_png(payload), secret=device_key is not None)], force=True, field="--labels"
    )
    return path
