"""The factory line end to end: 4 virtual boards at once, 12 device IDs from a CSV, boards swapped
as a technician would, every board checked online against the local emulator.

SAS runs the real CLI as a subprocess (fixed --ports, plain output); X.509 runs the service in
this process with --watch driven by an injected port lister. Both end with a secrets scan of
everything the run wrote or printed. One emulator serves the module (separate enrollment groups
and device IDs per test).
"""

import base64
import csv
import io
import queue
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from cryptography import x509
from iotcprov.board.provision import WifiSettings
from iotcprov.board.trust import roots_from_file
from iotcprov.credentials import pki, pki_files
from iotcprov.credentials.sas import derive_device_key
from iotcprov.factory import events as ev
from iotcprov.factory.audit import read_audit
from iotcprov.factory.credentials import CaSource
from iotcprov.factory.devices import read_devices
from iotcprov.factory.job import FactoryJob
from iotcprov.factory.labels import label_payload, label_png
from iotcprov.factory.line import Watch, run_line
from iotcprov.factory.manifest import open_manifest
from iotcprov.factory.report import report_csv
from iotcprov.factory.view import PlainView
from rich.console import Console

from tests.factory.conftest import FactoryProcess, board_bytes, board_identity, cli_env

STATIONS = 4
IDS = 12
WIFI_PASSWORD = "lab-wifi-secret-pass"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    from iotcprov import resources

    if not (resources.firmware_dir() / "main.py").is_file():
        pytest.fail("no firmware/main.py: the online check needs the firmware application")
    from iotcprov.emulator import Emulator

    with Emulator.running(tmp_path_factory.mktemp("emulator")) as emu:
        yield emu


def endpoint(emu) -> dict:
    return {
        "id_scope": emu.info["id_scope"],
        "dps": f"{emu.info['dps']['host']}:{emu.info['dps']['port']}",
        "hub_port": str(emu.info["hub"]["port"]),
        "ca_cert": emu.info["ca_cert"],
    }


def secrets_found(haystacks: dict[str, bytes], secrets: dict[str, bytes]) -> list[str]:
    """Every (where, which secret) pair where a secret shows up as text, base64 or hex."""
    found = []
    for where, data in haystacks.items():
        lowered = data.lower()
        for name, secret in secrets.items():
            forms = {secret, base64.b64encode(secret), secret.hex().encode()}
            if any(form in data or form.lower() in lowered for form in forms if len(form) >= 8):
                found.append(f"{name} in {where}")
    return found


def manifest_files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.parent.glob(path.name + "*")}


def each_id_on_exactly_one_board(boards, device_ids) -> dict[str, object]:
    """{device ID: the board holding it}; fails if an ID is on no board or on two."""
    holders: dict[str, list] = {}
    for board in boards:
        identity = board_identity(board)
        if identity is not None:
            holders.setdefault(identity["device_id"], []).append(board)
    assert sorted(holders) == sorted(device_ids)
    assert all(len(held) == 1 for held in holders.values()), {d: len(b) for d, b in holders.items()}
    return {device: held[0] for device, held in holders.items()}


def board_id(board) -> str:
    return board.mac.replace(":", "").lower()


def test_sas_four_boards_twelve_ids_from_csv(emulator, stations_factory, tmp_path):
    group_key = emulator.admin.create_sas_group("factory-sas")["primary_key"]
    device_ids = [f"sas-line-{n:02d}" for n in range(1, IDS + 1)]
    model = "dtmi:com:example:Thermostat;1"
    devices = tmp_path / "devices.csv"
    devices.write_text(
        "device_id,model_id\n"
        + "".join(f"{d},{model if n % 3 == 0 else ''}\n" for n, d in enumerate(device_ids))
    )
    manifest, labels = tmp_path / "line.sqlite", tmp_path / "labels"
    where = endpoint(emulator)
    stations = stations_factory(STATIONS)
    for index in range(STATIONS):
        stations.plug(index)

    factory = FactoryProcess(
        [
            "--devices", str(devices), "--ports", ",".join(stations.ports), "--id-scope", where["id_scope"],
            "--trust", where["ca_cert"], "--dps-host", where["dps"], "--hub-port", where["hub_port"],
            "--wifi-ssid", "lab", "--option", "telemetry_interval=2", "--main", "--online-check",
            "--online-timeout", "60", "--manifest", str(manifest), "--labels", str(labels),
        ],
        env=cli_env(IOTCPROV_GROUP_KEY=group_key, IOTCPROV_WIFI_PASSWORD=WIFI_PASSWORD),
    )  # fmt: skip
    technician(factory, stations, boards_wanted=IDS)
    assert factory.wait(60) == 0, factory.output()

    # every board reached the emulator, registered through the group
    registered = {
        d["device_id"]: d for d in emulator.admin.devices() if d["device_id"].startswith("sas-line-")
    }
    assert sorted(registered) == device_ids
    assert all(d["enrollment"]["name"] == "factory-sas" for d in registered.values())

    # each ID on exactly one board, and the manifest says which
    holder = each_id_on_exactly_one_board(stations.used, device_ids)
    assert len(stations.used) == IDS
    with open_manifest(manifest) as opened:
        records = {r.device_id: r for r in opened.records()}
        runs = opened.runs()
    assert sorted(records) == device_ids and len(runs) == 1 and runs[0]["ended_at"]
    for device_id, record in records.items():
        identity = board_identity(holder[device_id])
        assert record.status == "done" and record.error is None and record.attempts == 1
        assert record.board_id == board_id(holder[device_id])
        assert record.fingerprint == identity["fingerprint"] and record.fingerprint.startswith("sha256:")
        assert record.firmware_version and record.port in stations.ports and record.finished_at
        assert (
            record.model_id
            == identity["model_id"]
            == (model if device_ids.index(device_id) % 3 == 0 else None)
        )
        assert (labels / f"{device_id}.png").read_bytes() == label_png(
            label_payload(where["id_scope"], device_id, record.model_id)
        )

    report = subprocess.run(
        [sys.executable, "-m", "iotcprov", "factory", "report", "--manifest", str(manifest)],
        capture_output=True, text=True, timeout=60, env=cli_env(),
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    assert {(r["device_id"], r["board_id"], r["fingerprint"], r["status"]) for r in rows} == {
        (d, r.board_id, r.fingerprint, "done") for d, r in records.items()
    }

    audit = read_audit(tmp_path / "line.audit.jsonl")
    assert Counter(e["device"] for e in audit if e["event"] == "done") == Counter(device_ids)
    assert sum(1 for e in audit if e["event"] == "status" and "dps assigned" in e["line"]) == IDS

    secrets = {"group key": base64.b64decode(group_key), "group key text": group_key.encode()}
    secrets["Wi-Fi password"] = WIFI_PASSWORD.encode()
    for device_id in device_ids:
        key = derive_device_key(group_key, device_id)
        secrets[f"device key {device_id}"] = key.encode()
        secrets[f"raw device key {device_id}"] = base64.b64decode(key)
        assert key.encode() in board_bytes(holder[device_id])  # the scan looks for what is really there
    haystacks = {
        **manifest_files(manifest),
        "audit log": (tmp_path / "line.audit.jsonl").read_bytes(),
        "report": report.stdout.encode(),
        "terminal": factory.output().encode(),
    }
    assert secrets_found(haystacks, secrets) == []
    assert all(base64.b64decode(group_key) not in board_bytes(board) for board in stations.used)


def technician(factory: FactoryProcess, stations, boards_wanted: int, timeout: float = 240) -> None:
    """Unplug each board when the line is done with it; plug a new one when a station waits."""
    while True:
        name, port, _rest = factory.events.get(timeout=timeout)
        if name == "exit":
            return
        if port not in stations.ports:
            continue
        index = stations.station_of(port)
        if name in ("done", "failed", "skipped", "no-ids"):
            stations.unplug(index)
        elif name == "waiting" and len(stations.used) < boards_wanted:
            stations.plug(index)


def test_x509_watch_mode_issues_a_leaf_per_device(emulator, stations_factory, tmp_path):
    ca_key = pki.generate_key("ec")
    ca = pki.make_root_ca("factory line CA", ca_key)
    created = emulator.admin.create_x509_group("factory-x509", pki.cert_to_pem(ca).decode())
    proof = pki.make_verification_cert(created["verification_code"], ca, ca_key)
    emulator.admin.verify_group("factory-x509", pki.cert_to_pem(proof).decode())
    ca_cert_file, ca_key_file = tmp_path / "ca.pem", tmp_path / "ca.key"
    ca_cert_file.write_bytes(pki.cert_to_pem(ca))
    ca_key_file.write_bytes(pki.key_to_pem(ca_key, b"ca passphrase"))
    issuer = pki_files.load_issuer(ca_cert_file, ca_key_file, b"ca passphrase")

    device_ids = [f"x509-line-{n:02d}" for n in range(1, IDS + 1)]
    (tmp_path / "devices.csv").write_text("device_id\n" + "\n".join(device_ids) + "\n")
    where = endpoint(emulator)
    dps_host, dps_port = where["dps"].rsplit(":", 1)
    job = FactoryJob(
        id_scope=where["id_scope"], credentials=CaSource(issuer), trust=roots_from_file(where["ca_cert"]),
        dps_host=dps_host, dps_port=int(dps_port), hub_port=int(where["hub_port"]),
        options={"telemetry_interval": 2}, wifi=WifiSettings("lab", WIFI_PASSWORD), main=True,
        online_check=True, online_timeout=60,
    )  # fmt: skip
    stations = stations_factory(STATIONS)
    for index in range(STATIONS):
        stations.plug(index)
    terminal = io.StringIO()
    view = PlainView(Console(file=terminal))
    done: queue.Queue = queue.Queue()

    def on_event(event: ev.Event) -> None:
        view.on_event(event)
        if event.name in (ev.DONE, ev.FAILED, ev.SKIPPED):
            done.put(event.port)

    manifest = tmp_path / "x509.sqlite"
    outcome: list = []
    line = threading.Thread(
        target=lambda: outcome.append(
            run_line(
                job, manifest, read_devices(tmp_path / "devices.csv"), Watch(stations.records, interval=0.1),
                on_event=on_event,
            )
        ),
        daemon=True,
    )  # fmt: skip
    line.start()
    while line.is_alive() or not done.empty():  # the technician: a finished board out, a new one in
        try:
            port = done.get(timeout=1)
        except queue.Empty:
            continue
        index = stations.station_of(port)
        stations.unplug(index)
        if len(stations.used) < IDS:
            stations.plug(index)
    line.join(10)
    summary = outcome[0]
    assert summary.complete and not summary.failures, terminal.getvalue()
    assert summary.count("done") == IDS

    registered = {
        d["device_id"]: d for d in emulator.admin.devices() if d["device_id"].startswith("x509-line-")
    }
    assert sorted(registered) == device_ids
    assert all(d["enrollment"]["name"] == "factory-x509" for d in registered.values())

    holder = each_id_on_exactly_one_board(stations.used, device_ids)
    audit = read_audit(tmp_path / "x509.audit.jsonl")
    issued = {e["device"]: e["thumbprint"] for e in audit if e["event"] == "issued"}
    assert sorted(issued) == device_ids
    with open_manifest(manifest) as opened:
        records = {r.device_id: r for r in opened.records()}
    leaf_keys = {}
    for device_id, board in holder.items():
        active = (Path(board.directory) / "iotc-data" / "active").read_text().strip()
        folder = Path(board.directory) / "iotc-data" / active
        leaf = x509.load_der_x509_certificate((folder / "cert.der").read_bytes())
        assert pki.common_name(leaf) == device_id and leaf.issuer == ca.subject
        assert records[device_id].fingerprint == pki.thumbprint_sha256(leaf) == issued[device_id]
        assert records[device_id].board_id == board_id(board) and records[device_id].auth == "x509"
        leaf_keys[device_id] = (folder / "key.der").read_bytes()
    # the port of an unknown USB bridge was never touched
    assert "/dev/ttyACM-not-a-board" not in terminal.getvalue()

    secrets = {f"leaf key {d}": key for d, key in leaf_keys.items()}
    secrets["CA key"] = pki.key_to_der(ca_key)
    secrets["CA key file"] = ca_key_file.read_bytes()
    secrets["private key marker"] = b"PRIVATE KEY"
    secrets["Wi-Fi password"] = WIFI_PASSWORD.encode()
    haystacks = {
        **manifest_files(manifest),
        "audit log": (tmp_path / "x509.audit.jsonl").read_bytes(),
        "terminal": terminal.getvalue().encode(),
        "report": report_csv(manifest)[0].encode(),
    }
    assert secrets_found(haystacks, secrets) == []
    ca_der = pki.key_to_der(ca_key)
    assert all(ca_der not in board_bytes(board) for board in stations.used)
