"""One board at one port: flash → deploy → claim → provision → verify → online check → record.

The ID is claimed (bound to the board's unique ID in the manifest) only after the board has
answered, was checked, and has its firmware: a board that fails before that costs no ID. From
the claim on, a failure leaves the ID bound to this board, to be resumed when it is seen again.
"""

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from iotcprov.board import flash as flash_ops
from iotcprov.board import monitor as monitor_ops
from iotcprov.board.connection import CONNECT_TIMEOUT, BoardSession, open_board
from iotcprov.board.deploy import deploy_session, read_deployed
from iotcprov.board.identity import IdentityBundle, build_identity
from iotcprov.board.provision import read_active_identity, write_identity
from iotcprov.errors import InputError, IotcprovError, OperationError
from iotcprov.factory import events as ev
from iotcprov.factory.credentials import CaSource
from iotcprov.factory.job import FactoryJob
from iotcprov.factory.labels import write_label
from iotcprov.factory.manifest import DEFAULT_CLAIM_TIMEOUT, DONE, DeviceRecord, Manifest, Released

ONLINE_END = re.compile(rf"^{re.escape(monitor_ops.STATUS_PREFIX)}(dps assigned|config error|stopped)\b")
PROGRESS_EVERY_S = 0.25
RETRY_OPEN_EVERY_S = 0.5

Emit = Callable[..., None]  # emit(event name, port, **fields)


@dataclass(frozen=True)
class BoardOutcome:
    result: str  # done | skipped | failed | no ids
    board_id: str | None = None
    device_id: str | None = None
    stage: str | None = None
    error: str | None = None


class StageFailed(Exception):
    """A board failed at a stage; `reason` is safe to show and store (no secret)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


def _reason(error: BaseException) -> str:
    if isinstance(error, IotcprovError):
        return str(error)
    # Not one of ours: name it without its arguments' repr in full (they never hold a secret
    # here, but a one-line reason is what a technician can use).
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


class BoardWork:
    """Everything a station needs to work one board; shared by every station of a line."""

    def __init__(
        self,
        job: FactoryJob,
        manifest: Manifest,
        run_id: str,
        emit: Emit,
        stop: threading.Event,
        prepare_deployment: Callable[[tuple[int, int] | None], tuple[dict[str, bytes], str, str | None]],
        connect: Callable[..., BoardSession] = open_board,
        *,
        claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
        on_released: Callable[[Released], None] | None = None,
    ) -> None:
        self.job = job
        self.manifest = manifest
        self.run_id = run_id
        self.emit = emit
        self.stop = stop
        self.prepare_deployment = prepare_deployment
        self.connect = connect
        self.claim_timeout = claim_timeout
        self.on_released = on_released

    def release_stale(self) -> list[Released]:
        """Give up claims no station touched for `claim_timeout`, each reported (audit + output)."""
        released = self.manifest.release(older_than=self.claim_timeout)
        for item in released:
            reason = f"no change for {self.claim_timeout:g} s (--claim-timeout)"
            # no port: the claim's port may be on another station's PC, not a row of this view
            self.emit(ev.RELEASED, None, reason=reason, **item.as_fields())
            if self.on_released is not None:
                self.on_released(item)
        return released

    # --- the whole board ----------------------------------------------------------------------------

    def process(self, port: str) -> BoardOutcome:
        state = _BoardState(port)
        try:
            return self._process(state)
        except StageFailed as failure:
            return self._failed(state, failure.stage, failure.reason)
        except Exception as error:  # a board must never take its station down
            return self._failed(state, state.stage, _reason(error))

    def _process(self, state: "_BoardState") -> BoardOutcome:
        job, port = self.job, state.port
        if job.flash is not None:
            self._stage(state, ev.FLASH)
            self._flash(state)
        self._stage(state, ev.CONNECT)
        session = self._open(state)
        try:
            outcome = self._work_session(state, session)
        finally:
            session.close()
        if outcome is not None:
            return outcome
        if job.online_check:
            self._stage(state, ev.ONLINE)
            self._online_check(state)
        self._stage(state, ev.RECORD)
        label = None
        if job.labels is not None:  # before the record: a board is done only with its label
            key = state.bundle_key if job.label_include_key else None
            model = state.model_id or job.model_id
            label = str(write_label(job.labels, job.id_scope, state.device_id, model, key))
        self.manifest.finish(
            state.device_id,
            state.board_id,
            fingerprint=state.fingerprint,
            firmware_version=state.firmware_version,
        )
        self.emit(
            ev.DONE, port, board=state.board_id, device=state.device_id, fingerprint=state.fingerprint,
            firmware=state.firmware_version, seconds=round(time.monotonic() - state.started, 2), label=label,
        )  # fmt: skip
        return BoardOutcome(DONE, state.board_id, state.device_id)

    def _work_session(self, state: "_BoardState", session: BoardSession) -> BoardOutcome | None:
        """Everything done over the raw REPL; returns an outcome when the board is finished early."""
        job, port = self.job, state.port
        self._watch_progress(state, session)
        facts = session.facts()
        if not facts.unique_id:
            raise StageFailed(
                ev.CONNECT, "the board reports no unique ID (machine.unique_id); cannot record it"
            )
        state.board_id = facts.unique_id
        self.emit(ev.BOARD, port, board=state.board_id, micropython=".".join(map(str, facts.version)))

        self._stage(state, ev.CHECK)
        own = self.manifest.for_board(state.board_id)
        if own is not None and own.status == DONE and not job.reprovision:
            self.emit(
                ev.SKIPPED, port, board=state.board_id, device=own.device_id,
                reason="already provisioned (give --reprovision to write its ID again)",
            )  # fmt: skip
            return BoardOutcome(ev.SKIPPED, state.board_id, own.device_id)
        current = read_active_identity(session)
        if own is None and current is not None and current.settings is not None and not job.replace:
            raise StageFailed(
                ev.CHECK,
                f"the board holds device {current.device_id!r} (scope {current.id_scope}) that this manifest "
                "did not give it; give --replace to overwrite it",
            )
        if own is None and self.manifest.pending_left() == 0:
            self.emit(ev.NO_IDS, port, board=state.board_id)
            return BoardOutcome(ev.NO_IDS, state.board_id)

        if job.deploy:
            self._stage(state, ev.DEPLOY)
            prepared = self.prepare_deployment(facts.mpy_version)
            deployed = deploy_session(session, prepared=prepared, progress=self._percent(state))
            state.firmware_version = deployed.version
        else:
            state.firmware_version = _deployed_version(session)

        self._stage(state, ev.CLAIM)
        self.release_stale()
        record = self.manifest.claim(
            state.board_id, port, self.run_id, again=job.reprovision, claim_timeout=self.claim_timeout
        )
        if record is None:
            self.emit(ev.NO_IDS, port, board=state.board_id)
            return BoardOutcome(ev.NO_IDS, state.board_id)
        state.claim(record)
        self.emit(
            ev.CLAIMED, port, board=state.board_id, device=record.device_id, attempt=record.attempts,
            resumed=record.attempts > 1,
        )  # fmt: skip

        self._stage(state, ev.PROVISION)
        bundle = self._bundle(state)
        self.manifest.update(
            state.device_id, state.board_id, stage=ev.PROVISION, auth=bundle.auth,
            fingerprint=bundle.fingerprint, firmware_version=state.firmware_version,
        )  # fmt: skip
        written = write_identity(session, bundle, replace=True, wifi=job.wifi)

        self._stage(state, ev.VERIFY)
        self._verify(state, session, bundle, written.folder)
        return None

    # --- stages ---------------------------------------------------------------------------------------

    def _stage(self, state: "_BoardState", stage: str) -> None:
        state.stage = stage
        state.sent_at_stage = state.sent
        if state.device_id is not None and stage not in (ev.CLAIM, ev.PROVISION, ev.RECORD):
            self.manifest.update(state.device_id, state.board_id, stage=stage)
        self.emit(ev.STAGE, state.port, stage=stage, board=state.board_id, device=state.device_id)

    def _flash(self, state: "_BoardState") -> None:
        step = self.job.flash
        assert step is not None
        try:
            flash_ops.flash(
                state.port, step.image, step.board, erase=step.erase, baud=step.baud,
                progress=self._percent(state),
            )  # fmt: skip
        except IotcprovError as error:
            raise StageFailed(ev.FLASH, str(error)) from None

    def _open(self, state: "_BoardState") -> BoardSession:
        """Open the board, retrying while it boots (just plugged in, or just flashed)."""
        deadline = time.monotonic() + self.job.boot_timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                return self.connect(state.port, connect_timeout=max(1.0, min(CONNECT_TIMEOUT, remaining)))
            except InputError as error:
                if time.monotonic() >= deadline or self.stop.is_set():
                    raise StageFailed(ev.CONNECT, str(error)) from None
            self.stop.wait(RETRY_OPEN_EVERY_S)  # polling hardware that is still booting

    def _bundle(self, state: "_BoardState") -> IdentityBundle:
        source = self.job.credentials
        central = self.job.central
        if central is not None and central.before_provision(state.device_id):
            self.emit(ev.CREATED, state.port, device=state.device_id, board=state.board_id, app=central.host)
        if isinstance(source, CaSource):
            issued = source.issue(state.device_id)
            self.emit(
                ev.ISSUED, state.port, device=state.device_id, board=state.board_id,
                thumbprint=issued.thumbprint, not_after=issued.not_after,
            )  # fmt: skip
            credential = issued.credential
        else:
            credential = source.credential_for(state.device_id)
            if self.job.label_include_key:
                state.bundle_key = credential.device_key
        bundle = build_identity(self.job.identity_request(state.device_id, credential, state.model_id))
        state.fingerprint = bundle.fingerprint
        return bundle

    def _verify(
        self, state: "_BoardState", session: BoardSession, bundle: IdentityBundle, folder: str
    ) -> None:
        active = read_active_identity(session)
        problems = []
        if active is None or active.folder != folder:  # the identity's folder with the Wi-Fi settings
            problems.append("the new identity is not the active one")
        elif (active.settings or {}).get("fingerprint") != bundle.fingerprint:
            problems.append("the active identity has another credential")
        elif active.device_id != state.device_id:
            problems.append(f"the active identity is device {active.device_id!r}")
        if self.job.deploy and _deployed_version(session) != state.firmware_version:
            problems.append("the firmware version on the board differs from the one deployed")
        if problems:
            raise StageFailed(ev.VERIFY, "; ".join(problems))

    def _online_check(self, state: "_BoardState") -> None:
        """Restart the board and wait for it to register; with an IoT Central application, then
        ask it too: a device it holds back for approval fails with how to approve it."""
        central = self.job.central
        try:
            self._board_online(state)
        except StageFailed:
            problem = central.held_back(state.device_id) if central is not None else None
            if problem is not None:
                raise StageFailed(ev.ONLINE, problem) from None
            raise
        if central is not None:
            problem = central.online_problem(state.device_id)
            if problem is not None:
                raise StageFailed(ev.ONLINE, problem)

    def _board_online(self, state: "_BoardState") -> None:
        """Restart the board and wait for it to register: `iotc: dps assigned device=<its ID>`."""
        last_status: list[str] = []

        def on_line(line: str) -> None:
            if monitor_ops.status_event(line) is not None:
                last_status[:] = [line]
                self.emit(ev.STATUS, state.port, device=state.device_id, line=line)

        result = monitor_ops.monitor(
            state.port, on_line, until=ONLINE_END.pattern, timeout=self.job.online_timeout, reset=True
        )
        if result.matched is None:
            seen = (
                f" (last: {last_status[0]})" if last_status else " (no iotc: status line; is main.py there?)"
            )
            raise StageFailed(
                ev.ONLINE, f"no 'iotc: dps assigned' within {self.job.online_timeout:g} s{seen}"
            )
        status = monitor_ops.parse_status(result.matched)
        if status is None or status.event != "dps assigned":
            raise StageFailed(ev.ONLINE, f"the board said: {result.matched}")
        device = status.fields.get("device")
        if device is not None and device != state.device_id:
            raise StageFailed(ev.ONLINE, f"the board registered as {device!r}, not {state.device_id!r}")

    # --- progress and failure -------------------------------------------------------------------------

    def _watch_progress(self, state: "_BoardState", session: BoardSession) -> None:
        def before_write(sent: int, data: bytes) -> None:
            state.sent = sent + len(data)
            now = time.monotonic()
            if now - state.progress_at >= PROGRESS_EVERY_S:
                state.progress_at = now
                self.emit(ev.PROGRESS, state.port, stage=state.stage, sent=state.sent - state.sent_at_stage)

        session.set_before_write(before_write)

    def _percent(self, state: "_BoardState") -> Callable[[int, int], None]:
        """progress(done, total) of a stage's transfer as `percent` in progress events (throttled
        as the byte counts are; the last one always goes out)."""

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if total > 0 and (done >= total or now - state.progress_at >= PROGRESS_EVERY_S):
                state.progress_at = now
                self.emit(
                    ev.PROGRESS, state.port, stage=state.stage, sent=state.sent - state.sent_at_stage,
                    percent=min(100, done * 100 // total),
                )  # fmt: skip

        return progress

    def _failed(self, state: "_BoardState", stage: str, reason: str) -> BoardOutcome:
        if state.device_id is not None and state.board_id is not None:
            try:
                self.manifest.fail(state.device_id, state.board_id, stage=stage, error=reason)
            except OperationError as error:
                reason = f"{reason} (and the manifest could not record it: {error})"
        self.emit(
            ev.FAILED, state.port, board=state.board_id, device=state.device_id, stage=stage, error=reason
        )
        return BoardOutcome(ev.FAILED, state.board_id, state.device_id, stage, reason)


class _BoardState:
    def __init__(self, port: str) -> None:
        self.port = port
        self.started = time.monotonic()
        self.stage = ev.CONNECT
        self.board_id: str | None = None
        self.device_id: str | None = None
        self.model_id: str | None = None
        self.fingerprint: str | None = None
        self.firmware_version: str | None = None
        self.bundle_key: str | None = None  # only with --label-include-key; never logged
        self.sent = 0
        self.sent_at_stage = 0
        self.progress_at = 0.0

    def claim(self, record: DeviceRecord) -> None:
        self.device_id = record.device_id
        self.model_id = record.model_id

    def __repr__(self) -> str:
        return f"_BoardState(port={self.port!r}, board={self.board_id!r}, device={self.device_id!r})"


def _deployed_version(session: BoardSession) -> str | None:
    return (read_deployed(session) or {}).get("version")


