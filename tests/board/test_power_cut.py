"""Power cuts during `provision`: the board keeps a complete identity, old or new, each with its
own Wi-Fi settings.

The random test cuts the virtual board's power before a randomly chosen serial write of the
transfer (so every stage is hit: folder writes, verification, the switch of `active`, the
clean-up); the other cuts it in the middle of each file the board writes in turn (the
`power_cut_write` fault: half the data reaches the file), which a file replaced in place
instead of by temp + rename would not survive. Each round boots the board again, checks what the
firmware would read (the identity `active` names and the Wi-Fi settings it would use) and
provisions again successfully.
"""

import json
import os
import queue
import random
import threading

from iotcprov.board import provision
from iotcprov.board.connection import open_board
from iotcprov.board.credential_input import sas_from_group_key
from iotcprov.board.identity import IdentityRequest, WifiSettings, build_identity
from iotcprov.board.trust import azure_roots

from tests.board.conftest import GROUP_KEY, ID_SCOPE

ROUNDS = 24


class PowerCut(Exception):
    pass


def bundle(device_id: str, interval: int):
    return build_identity(
        IdentityRequest(
            ID_SCOPE,
            device_id,
            sas_from_group_key(GROUP_KEY, device_id),
            azure_roots(),
            options={"telemetry_interval": interval},
        )
    )


def wifi(round_number: int) -> WifiSettings:
    return WifiSettings(f"net-{round_number}", f"pw-{round_number}")


def active_identity(root) -> tuple[str, dict[str, bytes]]:
    """The active folder and its identity files (Wi-Fi settings aside: see firmware_reads)."""
    folder = (root / "iotc-data" / "active").read_text().strip()
    path = root / "iotc-data" / folder
    return folder, {p.name: p.read_bytes() for p in path.iterdir() if p.name != "wifi.json"}


def firmware_reads(root) -> tuple[dict[str, bytes], dict | None]:
    """What the firmware reads at boot: the active identity's files, and the Wi-Fi settings of the
    active folder's wifi.json, else of /iotc-data/wifi.json (firmware/iotc/settings.py)."""
    data = root / "iotc-data"
    _folder, files = active_identity(root)
    for path in (data / (data / "active").read_text().strip() / "wifi.json", data / "wifi.json"):
        if path.exists():
            return files, json.loads(path.read_bytes())
    return files, None


def settings_of(bundle, wifi_settings: WifiSettings) -> tuple[dict[str, bytes], dict]:
    return bundle.files, json.loads(wifi_settings.file())


def count_writes(board, new, new_wifi) -> int:
    """How many serial writes one complete write_identity makes (the space the cuts are drawn from)."""
    writes = []
    with open_board(board.port) as session:
        session.set_before_write(lambda sent, data: writes.append(len(data)))
        provision.write_identity(session, new, replace=True, wifi=new_wifi, set_clock=False)
    return len(writes)


def test_random_power_cuts_leave_old_or_new_identity(board):
    rng = random.Random(int(os.environ.get("POWER_CUT_SEED", "8")))
    current, current_wifi = bundle("dev-2", 2), wifi(-2)
    provision.provision(board.port, bundle("dev-1", 1), wifi=wifi(-1))
    total_writes = count_writes(board, current, current_wifi)
    outcomes = {"old": 0, "new": 0}
    for round_number in range(ROUNDS):
        new, new_wifi = bundle(("dev-1", "dev-2")[round_number % 2], 10 + round_number), wifi(round_number)
        cut_at = rng.randrange(total_writes)  # cut before this write: a point between two chunks
        writes = []

        def cut(sent, data, cut_at=cut_at, writes=writes):
            if len(writes) == cut_at:
                board.power_off()
                raise PowerCut
            writes.append(len(data))

        session = open_board(board.port)
        session.set_before_write(cut)
        try:
            provision.write_identity(session, new, replace=True, wifi=new_wifi, set_clock=False)
            board.power_off()  # the transfer took fewer writes this time (raw-paste windows vary)
        except PowerCut:
            pass
        finally:
            session.abandon()  # the board is gone: nothing more to say to it
        mark = board.output_mark()
        board.power_on()
        board.wait_for_output(r">>> ", timeout=30, since=mark)  # talk to it once it has booted

        seen = firmware_reads(board.directory)
        if seen[0] == new.files:
            assert seen == settings_of(new, new_wifi), f"round {round_number}: cut at {cut_at}"
            outcomes["new"] += 1
        else:
            assert seen == settings_of(current, current_wifi), f"round {round_number}: cut at {cut_at}"
            outcomes["old"] += 1

        again = provision.provision(board.port, new, replace=True, wifi=new_wifi, set_clock=False)
        assert firmware_reads(board.directory) == settings_of(new, new_wifi)
        leftovers = [p.name for p in (board.directory / "iotc-data").iterdir() if p.name.startswith("id-")]
        assert leftovers == [again.folder]
        current, current_wifi = new, new_wifi
    assert outcomes["old"] and outcomes["new"], outcomes  # cuts landed both before and after the switch


def test_a_power_cut_in_the_middle_of_each_file_write_leaves_old_or_new(board):
    """Cut the power half way through the board's 1st, 2nd, ... file write of a provision, until
    one runs to the end uncut: every file it writes, `active` and the Wi-Fi settings included."""
    cuts: queue.SimpleQueue = queue.SimpleQueue()
    board.on_power_cut(lambda: cuts.put("cut"))
    current, current_wifi = bundle("dev-1", 1), wifi(1)
    provision.provision(board.port, current, wifi=current_wifi, set_clock=False)
    cut_writes = 0
    for nth_write in range(1, 100):
        new, new_wifi = bundle(("dev-2", "dev-1")[nth_write % 2], 10 + nth_write), wifi(10 + nth_write)
        session = open_board(board.port)
        board.set_faults(power_cut_write=nth_write)
        failed: list = []

        def write(session=session, new=new, new_wifi=new_wifi, failed=failed):
            try:
                provision.write_identity(session, new, replace=True, wifi=new_wifi, set_clock=False)
            except Exception as error:  # the board went away under it
                failed.append(error)
            cuts.put("done")

        worker = threading.Thread(target=write, daemon=True)
        worker.start()
        if cuts.get(timeout=120) == "done":  # no nth write: the provision ran to the end uncut
            worker.join()
            session.close()
            board.set_faults()
            assert not failed, failed
            assert firmware_reads(board.directory) == settings_of(new, new_wifi)
            break
        session.abandon()  # the board lost power under the session: nothing more to say to it
        worker.join()
        assert cuts.get(timeout=120) == "done"
        board.set_faults()
        board.power_on()

        seen = firmware_reads(board.directory)
        if seen[0] == new.files:
            assert seen == settings_of(new, new_wifi), f"cut in write {nth_write}"
        else:
            assert seen == settings_of(current, current_wifi), f"cut in write {nth_write}"
        cut_writes += 1
        provision.provision(board.port, new, replace=True, wifi=new_wifi, set_clock=False)
        assert firmware_reads(board.directory) == settings_of(new, new_wifi)
        current, current_wifi = new, new_wifi
    else:
        raise AssertionError("every provision was cut: the fault never ran out of writes")
    assert cut_writes >= len(new.files) + 2  # each file of the folder, its wifi.json, `active`
