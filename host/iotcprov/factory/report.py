"""`iotcprov factory report`: the manifest as CSV, one row per device ID (no secret is in it),
or `--summary`: boards finished per station per hour. Same columns for every manifest back-end."""

import csv
import datetime
import io
from collections import Counter
from pathlib import Path

from iotcprov.errors import InputError
from iotcprov.factory.manifest import DONE, STATUSES, Counts, DeviceRecord, open_existing

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
    "station",
)
SUMMARY_COLUMNS = ("hour", "station", "boards")


def parse_time(text: str | None, option: str) -> str | None:
    """An ISO date or date-time (UTC unless it names a zone) as the manifest's timestamp text."""
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{option}: {text!r} is not a date or time; give e.g. 2026-05-04 or 2026-05-04T13:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    stamp = moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _select(
    location: str | Path, status: str | None, station: str | None, since: str | None, until: str | None
) -> tuple[list[DeviceRecord], Counts]:
    if status is not None and status not in STATUSES:
        raise InputError(f"--status: {status!r}; choose one of {', '.join(STATUSES)}")
    since, until = parse_time(since, "--since"), parse_time(until, "--until")
    with open_existing(location) as manifest:
        records = manifest.records(status, station=station, since=since, until=until)
        counts = manifest.counts()
    return records, counts


def report_csv(
    manifest_path: str | Path, status: str | None = None, *, station: str | None = None,
    since: str | None = None, until: str | None = None,
) -> tuple[str, Counts]:  # fmt: skip
    """(CSV text, counts over the whole manifest)."""
    records, counts = _select(manifest_path, status, station, since, until)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for record in records:
        values = record.as_dict()
        writer.writerow(["" if values[name] is None else values[name] for name in REPORT_COLUMNS])
    return out.getvalue(), counts


def summary_csv(
    manifest_path: str | Path,
    *,
    station: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> tuple[str, Counts]:
    """Boards finished per station per hour (UTC), oldest hour first."""
    records, counts = _select(manifest_path, DONE, station, since, until)
    per_hour = Counter(
        (record.finished_at[:13] + ":00Z", record.station or "") for record in records if record.finished_at
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for (hour, name), boards in sorted(per_hour.items()):
        writer.writerow([hour, name, boards])
    return out.getvalue(), counts
