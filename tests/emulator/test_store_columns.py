"""A data folder an older emulator wrote opens with the columns added since, and counts on."""

import sqlite3

from iotcprov.emulator.store import Store


def test_an_older_data_folder_gains_the_message_columns(tmp_path):
    old = sqlite3.connect(tmp_path / "emulator.sqlite3")
    old.execute("CREATE TABLE devices (device_id TEXT PRIMARY KEY COLLATE NOCASE, created REAL)")
    old.execute("INSERT INTO devices (device_id, created) VALUES ('old-1', 1.0)")
    old.commit()
    old.close()
    store = Store(tmp_path)
    try:
        assert store.device("old-1")["messages"] == 0
        store.add_telemetry("old-1", b'{"t": 1}', {}, 5.0)
        row = store.device("old-1")
        assert (row["messages"], row["last_message"]) == (1, 5.0)
    finally:
        store.close()
