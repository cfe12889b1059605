"""What a factory run reports while it works: one `Event` per thing that happened.

The same events feed the audit log (all but `progress`) and the terminal view. Their fields are
chosen to be non-secret: IDs, ports, stages, fingerprints, thumbprints, reasons.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Stages of one board, in order (flash and online are optional).
CONNECT = "connect"
FLASH = "flash"
CHECK = "check"
DEPLOY = "deploy"
CLAIM = "claim"
PROVISION = "provision"
VERIFY = "verify"
ONLINE = "online"
RECORD = "record"
STAGES = (CONNECT, FLASH, CHECK, DEPLOY, CLAIM, PROVISION, VERIFY, ONLINE, RECORD)

# Event names.
RUN_STARTED = "run started"
RUN_ENDED = "run ended"
WAITING = "waiting"  # a station waits for a board
SWAP = "swap"  # a station finished its board, which is still plugged: it waits for the next one
BOARD = "board"  # a board answered: its unique ID
STAGE = "stage"
PROGRESS = "progress"  # bytes sent so far in the current stage (not audited: too many)
CLAIMED = "claimed"
ISSUED = "issued"  # an X.509 leaf was issued (thumbprint)
CREATED = "created"  # the device was created in the IoT Central application (--create-devices)
STATUS = "status"  # an `iotc: ...` line from the board during the online check
DONE = "done"
SKIPPED = "skipped"
FAILED = "failed"
NO_IDS = "no ids"  # a board arrived but every ID is handed out
REMOVED = "removed"  # the board left the port
STATION_ENDED = "station ended"
STOPPING = "stopping"  # Ctrl-C: stations finish the boards in hand
RELEASED = "released"  # a stale claim of a station that stopped mid-board was given up
NOT_AUDITED = frozenset({PROGRESS})


@dataclass(frozen=True)
class Event:
    name: str
    port: str | None = None
    fields: dict = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def get(self, name: str, default=None):
        return self.fields.get(name, default)


EventSink = Callable[[Event], None]


def fan_out(*sinks: EventSink) -> EventSink:
    """One sink feeding several (the terminal view and the dashboard)."""

    def sink(event: Event) -> None:
        for each in sinks:
            each(event)

    return sink
