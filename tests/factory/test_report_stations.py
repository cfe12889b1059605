"""`factory report` over both back-ends: the same columns, filters by station and time, the
per-station per-hour summary; `factory release`; the manifest from IOTCPROV_MANIFEST; a
postgresql:// manifest without psycopg is one clear line naming what to install."""

import csv
import io
import subprocess
import sys

from iotcprov.factory.audit import read_audit
from iotcprov.factory.devices import generate_range
from iotcprov.factory.manifest import open_manifest
from iotcprov.factory.report import REPORT_COLUMNS, report_csv, summary_csv

from tests.factory.conftest import cli_env
from tests.factory.test_manifest import raw_execute


def fill(location: str) -> None:
    """Two stations, three boards done at known hours, one claim in progress."""
    for station, boards in (("east", ("e1", "e2")), ("west", ("w1", "w2"))):
        with open_manifest(location, station=station) as manifest:
            manifest.add_devices(generate_range("d-", 1, 5))
            for board in boards:
                record = manifest.claim(board, "usb", "run")
                if board != "w2":
                    manifest.finish(record.device_id, board, fingerprint="sha256:00", firmware_version="1")
    for device, hour in (("d-1", "09"), ("d-2", "10"), ("d-3", "10")):
        raw_execute(
            location,
            f"UPDATE devices SET finished_at = '2026-05-04T{hour}:15:00.000Z' WHERE device_id = '{device}'",
        )


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_report_filters_by_station_and_time_and_summarises_per_hour(manifest_location):
    fill(manifest_location)
    text, counts = report_csv(manifest_location)
    assert tuple(rows(text)[0]) == REPORT_COLUMNS and (counts.done, counts.claimed, counts.pending) == (
        3,
        1,
        1,
    )
    west = rows(report_csv(manifest_location, station="west")[0])
    assert [(r["device_id"], r["status"], r["station"]) for r in west] == [
        ("d-3", "done", "west"),
        ("d-4", "claimed", "west"),
    ]
    done_from_10 = report_csv(manifest_location, "done", since="2026-05-04T10:00", until="2026-05-04T11:00Z")[
        0
    ]
    assert [r["device_id"] for r in rows(done_from_10)] == ["d-2", "d-3"]
    summary, _ = summary_csv(manifest_location)
    assert rows(summary) == [
        {"hour": "2026-05-04T09:00Z", "station": "east", "boards": "1"},
        {"hour": "2026-05-04T10:00Z", "station": "east", "boards": "1"},
        {"hour": "2026-05-04T10:00Z", "station": "west", "boards": "1"},
    ]


def iotcprov(*args: str, cwd, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iotcprov", "factory", *args],
        capture_output=True, text=True, env=cli_env(**env), timeout=60, cwd=cwd,
    )  # fmt: skip


def test_the_cli_reads_the_manifest_from_the_environment(manifest_location, tmp_path):
    fill(manifest_location)
    summary = iotcprov(
        "report", "--summary", "--station", "west", cwd=tmp_path, IOTCPROV_MANIFEST=manifest_location
    )
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout == "hour,station,boards\n2026-05-04T10:00Z,west,1\n"
    bad = iotcprov("report", "--since", "yesterday", cwd=tmp_path, IOTCPROV_MANIFEST=manifest_location)
    assert bad.returncode == 2 and "--since: 'yesterday' is not a date or time" in bad.stderr
    released = iotcprov("release", "--station", "west", cwd=tmp_path, IOTCPROV_MANIFEST=manifest_location)
    assert released.returncode == 0, released.stderr
    assert "released: device d-4 (board w2, stage claimed): reissued" in released.stdout
    assert any(e["event"] == "released" for e in read_audit(next(tmp_path.glob("*.audit.jsonl"))))
    missing = iotcprov("report", cwd=tmp_path)
    assert missing.returncode == 2 and "--manifest: give the factory manifest" in missing.stderr


def test_postgresql_without_psycopg_says_what_to_install(tmp_path):
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from iotcprov.cli import main\n"
        "sys.exit(main(['factory', 'report', '--manifest', 'postgresql://u:pw@db.example/factory']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "iotcprov: error: --manifest: a postgresql:// manifest needs psycopg 3; install it: "
        "pip install 'iotcprov[postgres]' (or: pip install 'psycopg[binary]')"
    )
