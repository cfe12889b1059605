"""Several stations on one manifest (both back-ends): claims name their station, a live
station's claim is not taken over, a stale one is released (reissued or kept by its board), the
credential source and the schema version bind the manifest, connection trouble is one clear line."""

import base64
import sqlite3
from pathlib import Path

import pytest
from iotcprov.errors import InputError, OperationError
from iotcprov.factory.credentials import CaSource, GroupKeySource
from iotcprov.factory.devices import DeviceEntry, generate_range
from iotcprov.factory.manifest import ClaimHeld, open_manifest
from iotcprov.factory.manifest_schema import MIGRATIONS, SCHEMA_VERSION

from tests.factory.test_manifest import raw_execute

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(1, 33))).decode()


def test_claims_name_their_station_and_a_live_claim_is_not_taken_over(manifest_location):
    with (
        open_manifest(manifest_location, station="st-1") as one,
        open_manifest(manifest_location, station="st-2") as two,
    ):
        one.add_devices(generate_range("d-", 1, 3))
        claimed = one.claim("board-1", "p", "r1")
        assert (claimed.device_id, claimed.station) == ("d-1", "st-1")
        with pytest.raises(ClaimHeld, match=r"station 'st-1' .* factory release --station st-1"):
            two.claim("board-1", "p", "r2")
        resumed = one.claim("board-1", "p", "r1b")  # the station itself, restarted: resumes
        assert (resumed.device_id, resumed.attempts) == ("d-1", 2)
        assert two.claim("board-2", "p", "r2").station == "st-2"
        # a claim nobody touched for the timeout is the station's to take over? no: released first
        assert two.release(older_than=3600) == []
        runs_station = {r["station"] for r in [*one.runs()]}
        assert runs_station <= {"st-1", "st-2"}


def test_a_stale_claim_before_any_byte_is_reissued_after_it_is_kept_by_its_board(manifest_location):
    with (
        open_manifest(manifest_location, station="dead") as dead,
        open_manifest(manifest_location, station="alive") as alive,
    ):
        dead.add_devices(generate_range("d-", 1, 3))
        dead.claim("board-1", "p", "r")  # stage 'claimed': nothing was written to board-1
        dead.claim("board-2", "p", "r")
        dead.update("d-2", "board-2", stage="provision")  # board-2 may hold d-2's identity
        released = alive.release(station="dead")
        assert [(r.record.device_id, r.reissued) for r in released] == [("d-1", True), ("d-2", False)]
        assert (
            released[0].as_fields()["action"] == "reissued" and released[1].as_fields()["held_by"] == "dead"
        )
        by_id = {r.device_id: r for r in alive.records()}
        assert (by_id["d-1"].status, by_id["d-1"].board_id) == ("pending", None)
        assert (by_id["d-2"].status, by_id["d-2"].board_id) == ("failed", "board-2")
        assert "released: station 'dead' stopped at stage provision" in by_id["d-2"].error
        assert alive.claim("board-9", "p", "r2").device_id == "d-1"  # reissued to another board
        assert alive.claim("board-2", "p", "r2").device_id == "d-2"  # board-2 resumes with its own
        assert alive.release(station="dead") == []  # nothing twice


def test_claim_timeout_releases_only_claims_unchanged_that_long(manifest_location):
    with open_manifest(manifest_location, station="a") as manifest:
        manifest.add_devices(generate_range("d-", 1, 2))
        manifest.claim("board-1", "p", "r")
        assert manifest.release(older_than=3600) == []
        raw_execute(manifest_location, "UPDATE devices SET updated_at = '2020-01-01T00:00:00.000Z'")
        assert [r.record.device_id for r in manifest.release(older_than=3600)] == ["d-1"]


def test_the_credential_source_binds_the_manifest(manifest_location, tmp_path):
    group_a, group_b = GroupKeySource(KEY_A), GroupKeySource(KEY_B)
    assert group_a.binding().startswith("group key sha256:") and len(group_a.binding()) == 16 + 1 + 64
    assert KEY_A.rstrip("=") not in group_a.binding()
    with open_manifest(manifest_location) as manifest:
        manifest.bind_settings(id_scope="0ne00AAAAAA", auth="sas", credential=group_a.binding())
    with open_manifest(manifest_location) as manifest:
        manifest.bind_settings(id_scope="0ne00AAAAAA", auth="sas", credential=group_a.binding())
        with pytest.raises(
            InputError, match="--group-key/--ca-cert: the manifest .* 'group key sha256:"
        ) as refused:
            manifest.bind_settings(id_scope="0ne00AAAAAA", auth="sas", credential=group_b.binding())
        assert KEY_B not in str(refused.value) and KEY_A not in str(refused.value)


def test_the_ca_binds_an_x509_manifest(manifest_location, tmp_path):
    from iotcprov.credentials import pki_files

    cas = []
    for name in ("ca1", "ca2"):
        folder = tmp_path / name
        folder.mkdir()
        pki_files.create_root(folder, key_passphrase=None)
        cas.append(CaSource(pki_files.load_issuer(folder / "root.pem", folder / "root.key.pem", None)))
    with open_manifest(manifest_location) as manifest:
        manifest.bind_settings(auth="x509", credential=cas[0].binding())
    with open_manifest(manifest_location) as manifest:
        manifest.bind_settings(auth="x509", credential=cas[0].binding())
        with pytest.raises(InputError, match="--group-key/--ca-cert: the manifest .* 'CA sha256:"):
            manifest.bind_settings(auth="x509", credential=cas[1].binding())


def test_a_manifest_from_a_newer_iotcprov_is_refused(manifest_location):
    with open_manifest(manifest_location) as manifest:
        manifest.add_devices([DeviceEntry("a")])
    raw_execute(manifest_location, f"UPDATE meta SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema'")
    with pytest.raises(InputError, match=rf"has schema {SCHEMA_VERSION + 1}, written by a newer iotcprov"):
        open_manifest(manifest_location)


def test_a_version_1_manifest_is_migrated_on_first_use(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for statement in MIGRATIONS["sqlite"][1]:
        db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute(
        "INSERT INTO devices (device_id, position, added_at) VALUES ('old-1', 1, '2025-01-01T00:00:00Z')"
    )
    db.commit()
    db.close()
    with open_manifest(path, station="s") as manifest:
        assert manifest.claim("b", "p", "r").station == "s"
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (
        str(SCHEMA_VERSION),
    )


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path):
    pytest.importorskip("psycopg")
    dsn = f"postgresql://station:s3cr3t-pw@/factory?host={tmp_path}"  # no server listens there
    with pytest.raises(OperationError) as failed:
        open_manifest(dsn)
    message = str(failed.value)
    assert "s3cr3t-pw" not in message and "postgresql://station:***@/factory" in message
    assert message.startswith("--manifest: cannot reach PostgreSQL") and "\n" not in message


def test_a_wrong_database_is_bad_input(postgres_server):
    with pytest.raises(InputError, match="--manifest: .*does not exist"):
        open_manifest(postgres_server.database_uri("no_such_db"))
    with pytest.raises(InputError, match="holds no factory manifest yet"):
        open_manifest(postgres_server.new_database(), must_exist=True)


def test_a_run_with_another_group_key_is_refused_before_any_board(manifest_location, tmp_path):
    import subprocess
    import sys

    from tests.factory.conftest import cli_env

    with open_manifest(manifest_location) as manifest:
        manifest.bind_settings(id_scope="0ne00ABCDEF", auth="sas", credential=GroupKeySource(KEY_A).binding())
    run = subprocess.run(
        [
            sys.executable, "-m", "iotcprov", "factory", "run", "--prefix", "d-", "--count", "2",
            "--ports", str(tmp_path / "no-board"), "--id-scope", "0ne00ABCDEF", "--plain",
        ],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=cli_env(IOTCPROV_GROUP_KEY=KEY_B, IOTCPROV_MANIFEST=manifest_location),
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--group-key/--ca-cert: the manifest" in run.stderr and "'group key sha256:" in run.stderr
    assert KEY_A not in run.stdout + run.stderr and KEY_B not in run.stdout + run.stderr
    with open_manifest(manifest_location) as manifest:
        assert manifest.counts().total == 0  # nothing was added: refused before the IDs


def test_a_dropped_connection_is_reopened_and_the_step_retried(postgres_server):
    import psycopg

    location = postgres_server.new_database()
    with open_manifest(location, station="s") as manifest:
        manifest.add_devices(generate_range("d-", 1, 2))
        first = manifest._connection.info.backend_pid
        with psycopg.connect(location, autocommit=True) as admin:  # the network drops this session
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        record = manifest.claim("board-1", "p", "r")
        assert (record.device_id, record.attempts, record.station) == ("d-1", 1, "s")
        assert manifest._connection.info.backend_pid != first
        assert manifest.claim("board-1", "p", "r").attempts == 2  # one claim, not two


def test_a_wrong_password_is_bad_input_and_the_minimal_role_suffices(postgres_server, tmp_path):
    import subprocess
    import sys
    import time

    import psycopg

    from tests.factory.conftest import cli_env

    location = postgres_server.new_database()
    open_manifest(location).close()  # the owner creates the tables
    database = location.split("/")[3].split("?")[0]
    with psycopg.connect(location, autocommit=True) as owner:  # the minimal rights of docs/factory.md
        owner.execute("CREATE ROLE pw_station LOGIN PASSWORD 'right-horse-battery'")
        owner.execute(f"GRANT CONNECT ON DATABASE {database} TO pw_station")
        owner.execute("GRANT USAGE ON SCHEMA public TO pw_station")
        owner.execute("GRANT SELECT, INSERT, UPDATE ON meta, devices, runs TO pw_station")
    with psycopg.connect(postgres_server.uri, autocommit=True) as admin:
        hba = Path(admin.execute("SHOW hba_file").fetchone()[0])
        hba.write_text(f"local {database} pw_station scram-sha-256\n" + hba.read_text())
        admin.execute("SELECT pg_reload_conf()")
    socket = location.split("host=")[1]
    wrong = f"postgresql://pw_station:wrong-staple@/{database}?host={socket}"
    deadline = time.monotonic() + 10
    while True:  # the server applies the reloaded rules to new connections once it has read them
        try:
            psycopg.connect(wrong).close()
        except psycopg.OperationalError as error:
            if "password authentication failed" in str(error):
                break
        assert time.monotonic() < deadline, "the server never asked pw_station for its password"
    with pytest.raises(InputError) as refused:
        open_manifest(wrong)
    message = str(refused.value)
    assert "wrong-staple" not in message and "pw_station:***@" in message
    assert "password authentication failed" in message and "check the user, password and database" in message
    report = subprocess.run(
        [sys.executable, "-m", "iotcprov", "factory", "report", "--manifest", wrong],
        capture_output=True, text=True, timeout=60, env=cli_env(), cwd=tmp_path,
    )  # fmt: skip
    assert report.returncode == 2 and "wrong-staple" not in report.stdout + report.stderr
    assert len(report.stderr.strip().splitlines()) == 1  # one clear line
    right = wrong.replace("wrong-staple", "right-horse-battery")
    with open_manifest(right, station="minimal") as manifest:  # a whole station's work, no more rights
        manifest.bind_settings(id_scope="0ne00ABCDEF", auth="sas", credential=GroupKeySource(KEY_A).binding())
        manifest.add_devices(generate_range("d-", 1, 2))
        run = manifest.start_run({})
        manifest.claim("board-1", "p", run)
        manifest.update("d-1", "board-1", stage="provision")
        manifest.finish("d-1", "board-1", fingerprint="sha256:00", firmware_version="1")
        manifest.claim("board-2", "p", run)
        assert [r.record.device_id for r in manifest.release(station="minimal")] == ["d-2"]
        manifest.end_run(run, {})
        assert (manifest.counts().done, manifest.counts().pending) == (1, 1)
