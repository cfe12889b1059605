"""The device IDs a factory run hands out: from a CSV file or a generated, zero-padded range.

Everything is checked before any board is touched, and every problem is reported with its line
number in one message (a technician fixes the file once, not once per problem).
"""

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from iotcprov.errors import InputError
from iotcprov.validation import DEVICE_ID_COLUMN, DEVICE_ID_MAX, validate_device_id, validate_model_id

MODEL_ID_COLUMN = "model_id"
KNOWN_COLUMNS = (DEVICE_ID_COLUMN, MODEL_ID_COLUMN)
MAX_PROBLEMS_SHOWN = 8
MAX_RANGE = 1_000_000
# A first row naming one of these (spelled another way: deviceId, Device ID, id, ...) is a header
# with the wrong column name, not a device ID: it is refused rather than handed to a board.
_HEADER_LIKE = frozenset(
    {"deviceid", "device", "devices", "deviceids", "id", "ids", "registrationid", "modelid", "model", "dtmi"}
)


@dataclass(frozen=True)
class DeviceEntry:
    device_id: str
    model_id: str | None = None
    line: int | None = None  # 1-based line in the input file, None for a generated ID


def check_model_id(model_id: str, field: str = "--model-id") -> str:
    return validate_model_id(model_id, field)


def _problems_error(field: str, path: Path, problems: list[str]) -> InputError:
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = f"; and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    return InputError(f"{field}: {path}: {count}: {shown}{more}; fix the file and run again")


def _id_problem(device_id: str) -> str | None:
    try:
        validate_device_id(device_id, field="device ID")
    except InputError as error:
        return str(error)
    return None


def read_devices(path: str | Path, field: str = "--devices") -> list[DeviceEntry]:
    """Device IDs from a CSV file.

    With a header row naming `device_id` (and optionally `model_id`; other columns are ignored),
    or without a header: one device ID per line (optionally `,model_id`). Lines starting with '#'
    are comments; blank lines are allowed only at the end. Refused, with line numbers: empty rows,
    empty IDs, illegal characters, IDs repeated (case-insensitively, as DPS compares them), wrong
    column counts and malformed model IDs.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"{field}: cannot read {str(path)!r}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InputError(f"{field}: {path} is not UTF-8 text; save the CSV as UTF-8") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines are what editors leave; harmless
    rows = [(number, line) for number, line in enumerate(lines, start=1) if not line.lstrip().startswith("#")]
    if not rows:
        raise InputError(f"{field}: {path} holds no device IDs; give one ID per line or a device_id column")
    problems: list[str] = []
    columns = _header(rows[0][1])
    if columns is not None:
        if DEVICE_ID_COLUMN not in columns:
            raise InputError(
                f"{field}: {path}: line {rows[0][0]}: the header has no {DEVICE_ID_COLUMN!r} column"
            )
        rows = rows[1:]
        if not rows:
            raise InputError(f"{field}: {path} has a header but no device rows")
    else:
        _refuse_misnamed_header(field, path, rows[0])
        columns = list(KNOWN_COLUMNS)
    entries: list[DeviceEntry] = []
    first_seen: dict[str, int] = {}
    for number, line in rows:
        entry = _parse_row(number, line, columns, problems)
        if entry is None:
            continue
        folded = entry.device_id.lower()
        if folded in first_seen:
            problems.append(f"line {number}: device ID {entry.device_id!r} repeats line {first_seen[folded]}")
            continue
        first_seen[folded] = number
        entries.append(entry)
    if problems:
        raise _problems_error(field, path, problems)
    return entries


def _header(line: str) -> list[str] | None:
    """Column names when the first row is a header (it names device_id or another known column)."""
    names = [name.strip().lower() for name in next(csv.reader(io.StringIO(line)), [])]
    return names if any(name in KNOWN_COLUMNS for name in names) else None


def _refuse_misnamed_header(field: str, path: Path, row: tuple[int, str]) -> None:
    """A first row that looks like a header naming its columns otherwise than device_id/model_id."""
    number, line = row
    names = [name.strip() for name in next(csv.reader(io.StringIO(line)), [])]
    for name in names:
        if "".join(c for c in name.lower() if c.isalnum()) in _HEADER_LIKE:
            raise InputError(
                f"{field}: {path}: line {number}: unknown header {name!r}; name the column "
                f"{DEVICE_ID_COLUMN!r} (and {MODEL_ID_COLUMN!r}), or leave the header out"
            )


def _parse_row(number: int, line: str, columns: list[str], problems: list[str]) -> DeviceEntry | None:
    if not line.strip():
        problems.append(f"line {number}: empty row; remove it")
        return None
    values = [value.strip() for value in next(csv.reader(io.StringIO(line)), [])]
    if not any(values):
        problems.append(f"line {number}: empty row; remove it")
        return None
    if len(values) > len(columns):
        problems.append(f"line {number}: {len(values)} columns where the header has {len(columns)}")
        return None
    row = dict(zip(columns, values + [""] * (len(columns) - len(values)), strict=True))
    device_id = row[DEVICE_ID_COLUMN]
    if not device_id:
        problems.append(f"line {number}: empty device ID")
        return None
    problem = _id_problem(device_id)
    if problem is not None:
        problems.append(f"line {number}: {problem}")
        return None
    model_id = row.get(MODEL_ID_COLUMN) or None
    if model_id is not None:
        try:
            check_model_id(model_id, field="model ID")
        except InputError as error:
            problems.append(f"line {number}: {error}")
            return None
    return DeviceEntry(device_id, model_id, number)


def generate_range(prefix: str, start: int, count: int, width: int | None = None) -> list[DeviceEntry]:
    """`prefix` + numbers start..start+count-1, zero-padded to `width` (default: the widest number)."""
    if count < 1 or count > MAX_RANGE:
        raise InputError(f"--count: {count} is out of range; give 1 to {MAX_RANGE}")
    if start < 0:
        raise InputError(f"--start: {start} is negative; give 0 or more")
    last = start + count - 1
    digits = len(str(last))
    if width is None:
        width = digits
    elif width < digits:
        raise InputError(f"--width: {width} digits cannot hold {last}; give --width {digits} or more")
    if len(prefix) + width > DEVICE_ID_MAX:
        raise InputError(f"--prefix: IDs would be longer than {DEVICE_ID_MAX} characters; shorten the prefix")
    if prefix:
        problem = _id_problem(prefix)
        if problem is not None:
            raise InputError(f"--prefix: {problem.removeprefix('device ID: ')}")
    return [DeviceEntry(f"{prefix}{number:0{width}d}") for number in range(start, last + 1)]
