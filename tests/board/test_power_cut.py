"""Power cuts at random points of `provision`: the board keeps a complete identity, old or new.

Each round cuts the virtual board's power before a randomly chosen serial write of the transfer
(so every stage is hit: folder writes, verification, the switch of `active`, the clean-up), boots
it again, checks that `active` names a folder holding exactly the old or the new identity, and
provisions again successfully.
"""

import os
import random

from iotcprov.board import provision
from iotcprov.board.connection import open_board
from iotcprov.board.credential_input import sas_from_group_key
from iotcprov.board.identity import IdentityRequest, build_identity
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


def active_identity(root) -> tuple[str, dict[str, bytes]]:
    folder = (root / "iotc-data" / "active").read_text().strip()
    path = root / "iotc-data" / folder
    return folder, {p.name: p.read_bytes() for p in path.iterdir()}


def count_writes(board, new) -> int:
    """How many serial writes one complete write_identity makes (the space the cuts are drawn from)."""
    writes = []
    with open_board(board.port) as session:
        session.set_before_write(lambda sent, data: writes.append(len(data)))
        provision.write_identity(session, new, replace=True, set_clock=False)
    return len(writes)


def test_random_power_cuts_leave_old_or_new_identity(board):
    rng = random.Random(int(os.environ.get("POWER_CUT_SEED", "8")))
    current = bundle("dev-2", 2)
    provision.provision(board.port, bundle("dev-1", 1))
    total_writes = count_writes(board, current)
    outcomes = {"old": 0, "new": 0}
    for round_number in range(ROUNDS):
        new = bundle(("dev-1", "dev-2")[round_number % 2], 10 + round_number)
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
            provision.write_identity(session, new, replace=True, set_clock=False)
            board.power_off()  # the transfer took fewer writes this time (raw-paste windows vary)
        except PowerCut:
            pass
        finally:
            session.abandon()  # the board is gone: nothing more to say to it
        mark = board.output_mark()
        board.power_on()
        board.wait_for_output(r">>> ", timeout=30, since=mark)  # talk to it once it has booted

        folder, files = active_identity(board.directory)
        if folder == new.folder:
            assert files == new.files
            outcomes["new"] += 1
        else:
            assert (folder, files) == (current.folder, current.files), (
                f"round {round_number}: cut at {cut_at}"
            )
            outcomes["old"] += 1

        again = provision.provision(board.port, new, replace=True, set_clock=False)
        assert again.folder == new.folder
        assert active_identity(board.directory) == (new.folder, new.files)
        leftovers = [p.name for p in (board.directory / "iotc-data").iterdir() if p.name.startswith("id-")]
        assert leftovers == [new.folder]
        current = new
    assert outcomes["old"] and outcomes["new"], outcomes  # cuts landed both before and after the switch
