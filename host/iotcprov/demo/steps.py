"""The demo's steps, in order. Each takes the shared `DemoContext`, does one thing the way a user
with a real board would (the same `iotcprov.board` service functions as `iotcprov provision` and
`iotcprov deploy`), puts what happened on the timeline, and checks the outcome in the emulator's
records. A step raises OperationError with the reason when it fails or times out.
"""

import json
import secrets
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from iotcprov.board import deploy, provision
from iotcprov.board.identity import IdentityRequest, build_identity
from iotcprov.board.trust import roots_from_file
from iotcprov.demo.console import ConsoleFollower
from iotcprov.demo.enrollment import Enrollment, central_sas, central_x509, sas_group, x509_group
from iotcprov.demo.timeline import CLOUD, HOST, Timeline
from iotcprov.errors import OperationError

# How long each wait may take, in seconds; the whole demo normally needs about 15.
REGISTRATION_TIMEOUT = 30.0
HUB_TIMEOUT = 20.0
TELEMETRY_TIMEOUT = 15.0
PROPERTY_TIMEOUT = 15.0
COMMAND_TIMEOUT = 15.0
SUBSCRIBE_TIMEOUT = 5.0

TELEMETRY_INTERVAL = 2  # seconds: the board's telemetry_interval option, short for the demo
READINGS_AFTER_PROPERTY = 2  # telemetry messages shown between the property and the command
WIFI_SSID = "demo-lab"
DESIRED_TOPIC = "$iothub/twin/PATCH/properties/desired/#"
METHODS_TOPIC = "$iothub/methods/POST/#"
REPL_PROMPT = r'Type "help\(\)" for more information\.\r?\n>>> '

# What an operator does in IoT Central during the demo: set one writable property, run one command.
PROPERTY_NAME = "targetTemperature"
PROPERTY_VALUE = 22.5
COMMAND_NAME = "getMaxMinReport"
COMMAND_PAYLOAD = None


@dataclass
class DemoContext:
    timeline: Timeline
    stack: ExitStack  # everything started is registered here and stopped when it closes
    work: Path  # emulator/, board/, board-state/, credentials/
    x509: bool = False
    central: bool = False  # enroll through the emulator's IoT Central REST API
    baud: int = 115200
    emulator: object = None  # iotcprov.emulator.Emulator
    board: object = None  # iotcprov.virtual_board.VirtualBoard
    follower: ConsoleFollower | None = None
    device_id: str = ""
    enrollment: Enrollment | None = None
    facts: dict = field(default_factory=dict)  # what the summary reports
    moments: dict[str, float] = field(default_factory=dict)  # timeline seconds of milestones

    @property
    def admin(self):
        return self.emulator.admin

    def emit(self, source: str, step: str, text: str, *, milestone: bool = False, **data: object) -> None:
        self.timeline.emit(source, step, text, milestone=milestone, **data)


def device_id_for(mac: str) -> str:
    """`demo-` + the last three bytes of the board's MAC: letters, digits and `-`, as IoT Central asks."""
    return "demo-" + mac.replace(":", "").lower()[-6:]


# --- the steps ----------------------------------------------------------------------------------


def start_emulator(ctx: DemoContext) -> None:
    from iotcprov.emulator import Emulator

    ctx.emulator = ctx.stack.enter_context(
        Emulator.running(ctx.work / "emulator", dps="localhost:0", hub="localhost:0")
    )
    info = ctx.emulator.info
    dps, hub = info["dps"], info["hub"]
    ctx.facts.update(
        id_scope=info["id_scope"],
        dps=f"{dps['host']}:{dps['port']}",
        hub=hub["name"],
        hub_endpoint=f"{hub['host']}:{hub['port']}",
    )
    ctx.emit(
        HOST, "emulator",
        f"local DPS on {dps['host']}:{dps['port']} and IoT Hub on {hub['host']}:{hub['port']} "
        f"(ID scope {info['id_scope']})",
        milestone=True, id_scope=info["id_scope"], dps=ctx.facts["dps"], hub=ctx.facts["hub_endpoint"],
    )  # fmt: skip
    if info.get("dashboard_url"):
        ctx.facts.update(dashboard_url=info["dashboard_url"])
        ctx.emit(
            HOST, "emulator", f"dashboard: {info['dashboard_url']} (open it to watch the board live)",
            dashboard_url=info["dashboard_url"],
        )  # fmt: skip


def start_board(ctx: DemoContext) -> None:
    from iotcprov.virtual_board import VirtualBoard

    (ctx.work / "board").mkdir()
    board = VirtualBoard(
        ctx.work / "board", baud=ctx.baud, state_directory=ctx.work / "board-state", console_file=True
    )
    ctx.board = ctx.stack.enter_context(board)
    ctx.device_id = device_id_for(board.mac)
    ctx.facts.update(device_id=ctx.device_id, mac=board.mac)
    speed = f"{ctx.baud} baud" if ctx.baud else "unthrottled"
    ctx.emit(
        HOST, "board", f"virtual ESP32 (MAC {board.mac}) on {board.port}, {speed}; device ID {ctx.device_id}",
        milestone=True, port=board.port, mac=board.mac, device_id=ctx.device_id,
    )  # fmt: skip


def _central_client(ctx: DemoContext):
    """A client of the emulator's IoT Central API, with an API token the emulator issued."""
    from iotcprov.central.auth import ApiToken
    from iotcprov.central.client import App, CentralClient

    info = ctx.emulator.info
    token = ctx.admin.create_api_token("demo")["token"]
    ctx.emit(CLOUD, "enrollment", f"API token issued; IoT Central's REST API at {info['central_url']}/api")
    app = App.parse(info["central_url"], "central_url", Path(info["ca_cert"]))
    return CentralClient(app, ApiToken(token))


def enroll(ctx: DemoContext) -> None:
    if ctx.central:
        client = _central_client(ctx)
        progress = lambda text, **data: ctx.emit(CLOUD, "enrollment", text, **data)  # noqa: E731
        if ctx.x509:
            ctx.enrollment = central_x509(client, ctx.device_id, ctx.work / "credentials", progress)
            text = "through the API: the board gets its own certificate; the CA key stays in memory"
        else:
            ctx.enrollment = central_sas(client, ctx.device_id, progress)
            text = "through the API: the board gets its device's own keys; no group key on the host"
    elif ctx.x509:
        ctx.enrollment = x509_group(
            ctx.admin, ctx.device_id, ctx.work / "credentials",
            on_progress=lambda text, **data: ctx.emit(CLOUD, "enrollment", text, **data),
        )  # fmt: skip
        text = "the board gets its own certificate and key; the CA key stays in this process's memory"
    else:
        ctx.enrollment = sas_group(ctx.admin, ctx.device_id)
        ctx.emit(
            CLOUD, "enrollment", f"SAS enrollment group '{ctx.enrollment.group}' created (generated keys)",
            group=ctx.enrollment.group,
        )  # fmt: skip
        text = "device key derived from the group key on the host; the group key stays on the host"
    ctx.facts.update(enrollment_group=ctx.enrollment.group, attestation=ctx.enrollment.attestation)
    ctx.emit(HOST, "enrollment", text, milestone=True, attestation=ctx.enrollment.attestation)


def provision_board(ctx: DemoContext) -> None:
    info = ctx.emulator.info
    bundle = build_identity(
        IdentityRequest(
            id_scope=info["id_scope"],
            device_id=ctx.device_id,
            credential=ctx.enrollment.credential,
            trust=roots_from_file(info["ca_cert"]),  # the emulator's CA in place of Azure's roots
            dps_host=info["dps"]["host"],
            dps_port=info["dps"]["port"],
            hub_port=info["hub"]["port"],
            options={"telemetry_interval": TELEMETRY_INTERVAL},
        )
    )
    wifi = provision.WifiSettings(WIFI_SSID, secrets.token_urlsafe(12))
    result = provision.provision(ctx.board.port, bundle, wifi=wifi)
    ctx.facts.update(fingerprint=result.fingerprint)
    ctx.emit(
        HOST, "provision",
        f"identity written and verified on the board: {result.device_id}, credential {result.fingerprint}, "
        f"{result.bytes_sent} bytes in {result.seconds:.1f} s",
        milestone=True, device_id=result.device_id, fingerprint=result.fingerprint, folder=result.folder,
        bytes_sent=result.bytes_sent, seconds=round(result.seconds, 3),
    )  # fmt: skip


def deploy_firmware(ctx: DemoContext) -> None:
    result = deploy.deploy(ctx.board.port, main=True)
    ctx.moments["deployed_mark"] = ctx.board.output_mark()
    ctx.facts.update(firmware=result.version, bytecode=result.bytecode)
    ctx.emit(
        HOST, "deploy",
        f"firmware {result.version} copied to /lib/iotc as {result.bytecode} with the example main.py: "
        f"{len(result.written)} files, {result.bytes_sent} bytes in {result.seconds:.1f} s",
        milestone=True, version=result.version, bytecode=result.bytecode, files=len(result.written),
        bytes_sent=result.bytes_sent, seconds=round(result.seconds, 3),
    )  # fmt: skip


def boot_board(ctx: DemoContext) -> None:
    # Leaving the raw REPL after deploy, the board prints its banner and `>>> `: let that pass, so
    # the timeline starts with the reset rather than with half a banner.
    try:
        since = int(ctx.moments["deployed_mark"])
        mark = ctx.board.wait_for_output(REPL_PROMPT, timeout=5, since=since).end()
    except TimeoutError:  # it had passed already
        mark = ctx.board.output_mark()
    ctx.follower = ConsoleFollower(ctx.board, ctx.timeline, "boot", since=mark).start()
    ctx.stack.callback(ctx.follower.stop)
    ctx.emit(HOST, "boot", "reset (the EN button): main.py starts")
    ctx.board.reset()
    ctx.moments["boot"] = ctx.timeline.elapsed()


def await_registration(ctx: DemoContext) -> None:
    ctx.follower.wait_for("dps assigned", REGISTRATION_TIMEOUT)
    record = ctx.admin.device(ctx.device_id)
    if record["registrations"] < 1 or record["status"] != "assigned":
        raise OperationError(f"the emulator holds no assignment for {ctx.device_id}")
    ctx.moments["registration"] = ctx.timeline.elapsed()
    group = record["enrollment"]
    ctx.emit(
        CLOUD, "registration",
        f"DPS registered {ctx.device_id} through {group['kind']} enrollment '{group['name']}' "
        f"({group['attestation']}) and assigned it to hub {record['assigned_hub']}",
        milestone=True, assigned_hub=record["assigned_hub"], enrollment=group,
    )  # fmt: skip


def await_hub(ctx: DemoContext) -> None:
    status = ctx.follower.wait_for("hub connected", HUB_TIMEOUT)
    record = ctx.admin.device(ctx.device_id)
    if not record["connected"]:
        raise OperationError(f"the board says it is connected, but the hub has no session of {ctx.device_id}")
    ctx.moments["hub"] = ctx.timeline.elapsed()
    ctx.facts.update(model_id=record["model_id"])
    model = f", model {record['model_id']}" if record["model_id"] else ""
    expires = status.fields.get("expires")
    how = (
        f"SAS token valid for {(int(expires) - time.time()) / 60:.0f} min"
        if expires and expires.isdigit()
        else "X.509 client certificate"
    )
    ctx.emit(
        CLOUD, "hub", f"IoT Hub session open for {ctx.device_id} ({how}{model})",
        milestone=True, hub_connections=record["hub_connections"], model_id=record["model_id"],
    )  # fmt: skip


def _next_telemetry(ctx: DemoContext, step: str, milestone: bool) -> dict:
    """Wait for the next telemetry message the hub stored, and show it."""
    after = ctx.facts.get("last_telemetry_id")
    messages = ctx.admin.telemetry(ctx.device_id, wait=TELEMETRY_TIMEOUT, after=after, limit=1)
    if not messages:
        raise OperationError(f"no telemetry reached the hub within {TELEMETRY_TIMEOUT:g} s")
    message = messages[0]
    ctx.facts["last_telemetry_id"] = message["id"]
    try:
        body = json.loads(message["body"])
    except (TypeError, ValueError):
        body = message["body"]
    ctx.emit(
        CLOUD, step, f"telemetry received: {message['body']}",
        milestone=milestone, body=body, properties=message["properties"],
    )  # fmt: skip
    return body


def await_telemetry(ctx: DemoContext) -> None:
    ctx.facts.update(first_telemetry=_next_telemetry(ctx, "telemetry", milestone=True))
    ctx.moments["telemetry"] = ctx.timeline.elapsed()


def more_readings(ctx: DemoContext) -> None:
    """A few more messages after the property changed, so the command has readings to report on."""
    for _ in range(READINGS_AFTER_PROPERTY):
        _next_telemetry(ctx, "readings", milestone=False)


def _poll(check, timeout: float):
    """check() until it returns something truthy or `timeout` passes (then its last answer).
    The emulator's admin API has no push for twins and subscriptions, so the demo asks again."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def _require_subscription(ctx: DemoContext, topic: str, what: str) -> None:
    """The device subscribes right after connecting; give it a moment, then say what is missing."""
    subscribed = _poll(lambda: topic in ctx.admin.device(ctx.device_id)["subscriptions"], SUBSCRIBE_TIMEOUT)
    if not subscribed:
        subscriptions = ctx.admin.device(ctx.device_id)["subscriptions"]
        raise OperationError(
            f"the firmware did not subscribe to {what} ({topic}); subscribed: {subscriptions or 'nothing'}"
        )


def acknowledge_property(ctx: DemoContext) -> None:
    _require_subscription(ctx, DESIRED_TOPIC, "writable property updates")
    answer = ctx.admin.set_desired(ctx.device_id, {PROPERTY_NAME: PROPERTY_VALUE})
    version = answer["$version"]
    ctx.emit(
        CLOUD, "property",
        f"operator sets writable property {PROPERTY_NAME} = {PROPERTY_VALUE} ($version {version})",
        name=PROPERTY_NAME, value=PROPERTY_VALUE, version=version,
    )  # fmt: skip

    def acknowledged() -> dict | None:
        reported = ctx.admin.device(ctx.device_id)["twin"]["reported"].get(PROPERTY_NAME)
        return reported if isinstance(reported, dict) and reported.get("av") == version else None

    reported = _poll(acknowledged, PROPERTY_TIMEOUT)
    if not reported:
        raise OperationError(
            f"no acknowledgement of {PROPERTY_NAME} ($version {version}) in the reported twin "
            f"within {PROPERTY_TIMEOUT:g} s"
        )
    ctx.moments["property"] = ctx.timeline.elapsed()
    ack = {k: reported.get(k) for k in ("value", "ac", "av", "ad")}
    ctx.facts.update(property={"name": PROPERTY_NAME, **ack})
    if reported.get("ac") != 200:
        raise OperationError(f"the device refused {PROPERTY_NAME}: {json.dumps(ack)}")
    ctx.emit(
        CLOUD, "property",
        f"device acknowledged {PROPERTY_NAME}: value {ack['value']}, ac {ack['ac']}, av {ack['av']}"
        + (f", \"{ack['ad']}\"" if ack.get("ad") else ""),
        milestone=True, name=PROPERTY_NAME, **ack,
    )  # fmt: skip


def answer_command(ctx: DemoContext) -> None:
    _require_subscription(ctx, METHODS_TOPIC, "commands")
    ctx.emit(CLOUD, "command", f"operator runs command {COMMAND_NAME}", name=COMMAND_NAME)
    answer = ctx.admin.invoke(ctx.device_id, COMMAND_NAME, COMMAND_PAYLOAD, timeout=COMMAND_TIMEOUT)
    ctx.facts.update(command={"name": COMMAND_NAME, "status": answer["status"], "payload": answer["payload"]})
    if answer["status"] != 200:
        said = json.dumps(answer["payload"])
        raise OperationError(f"command {COMMAND_NAME} answered {answer['status']}: {said}")
    ctx.moments["command"] = ctx.timeline.elapsed()
    ctx.emit(
        CLOUD, "command", f"device answered {COMMAND_NAME}: status 200, {json.dumps(answer['payload'])}",
        milestone=True, name=COMMAND_NAME, status=answer["status"], payload=answer["payload"],
    )  # fmt: skip


# The order matters: the board's MAC names the device, the enrollment needs the device ID.
STEPS = (
    ("emulator", start_emulator),
    ("board", start_board),
    ("enrollment", enroll),
    ("provision", provision_board),
    ("deploy", deploy_firmware),
    ("boot", boot_board),
    ("registration", await_registration),
    ("hub", await_hub),
    ("telemetry", await_telemetry),
    ("property", acknowledge_property),
    ("readings", more_readings),
    ("command", answer_command),
)
