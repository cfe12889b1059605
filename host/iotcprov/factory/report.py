"""`iotcprov factory report`: the manifest as CSV, one row per device ID (no secret is in it)."""

import csv
import io
from pathlib import Path

from iotcprov.errors import InputError
from iotcprov.factory.manifest import STATUSES, Counts, open_existing

REPORT_COLUMNS = (
    "device_id",
    "board_id",
    "fingerprint",
    "status",
    "stage",
    "auth",
    "model_id",
    "firmware_version",
    "port",
    "attempts",
    "claimed_at",
    "finished_at",
    "error",
)


def report_csv(manifest_path: str | Path, status: str | None = None) -> tuple[str, Counts]:
    """(CSV text, counts over the whole manifest)."""
    if status is not None and status not in STATUSES:
        raise InputError(f"--status: {status!r}; choose one of {', '.join(STATUSES)}")
    with open_existing(manifest_path) as manifest:
        records = manifest.records(status)
        counts = manifest.counts()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for record in records:
        values = record.as_dict()
        writer.writerow(["" if values[name] is None else values[name] for name in REPORT_COLUMNS])
    return out.getvalue(), counts
