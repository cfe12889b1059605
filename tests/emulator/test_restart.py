"""The emulator after kill -9: it restarts at once on the same folder, and no device stays connected."""

from __future__ import annotations

import os
import signal

import pytest
from iotcprov.emulator import Emulator
from iotcprov.errors import OperationError

from tests.emulator.helpers import connect_hub_sas, provision_sas

pytestmark = pytest.mark.skipif(not hasattr(os, "waitid"), reason="kill -9 and zombies are POSIX")


def test_restart_right_after_kill_9_resets_connections(tmp_path):
    first = Emulator.start(tmp_path)
    second = None
    client = None
    try:
        key = first.admin.enroll_sas("restart-dev")["primary_key"]
        provision_sas(first, "restart-dev", key)
        client, connack = connect_hub_sas(first, "restart-dev", key)
        assert connack.return_code == 0
        assert first.admin.device("restart-dev")["connected"] is True
        first.process.send_signal(signal.SIGKILL)
        # dead but not reaped: a zombie whose pid still answers os.kill(pid, 0)
        os.waitid(os.P_PID, first.process.pid, os.WEXITED | os.WNOWAIT)
        second = Emulator.start(tmp_path)
        record = second.admin.device("restart-dev")
        assert record["connected"] is False
        assert record["disconnect_reason"] == "emulator stopped without closing the connection"
        with pytest.raises(OperationError, match="another emulator already serves"):
            Emulator.start(tmp_path)  # while `second` lives, the folder stays guarded
    finally:
        if client is not None:
            client.close()
        first.stop()
        if second is not None:
            second.stop()
