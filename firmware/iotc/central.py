# IoT Central features on the live hub session: writable properties (applied by the
# application's handlers and acknowledged), commands (direct methods answered with a status and
# a JSON payload; offline commands as C2D messages) and cloud-to-device messages. Loaded on the
# first message for a feature the application registered (Device.on_property, on_command,
# on_message); the payload rules are in pnp.py. Handlers run here, outside umqtt's wait, so they
# may send telemetry or report properties.

import json

from iotc import hub, pnp, status


def handle(device, found, payload):
    """What the hub sent (an incoming.Incoming and its payload) -> the application's handler."""
    kind = found.kind
    if kind == "method":
        command(device, found.name, payload, found.rid)
    elif kind == "c2d":
        message(device, found.properties, payload)
    elif kind == "twin-desired":
        patch = _json(payload)
        apply_desired(device, patch, None, pnp.desired_version(patch, found.version))
    else:
        twin_response(device, found, payload)


def _json(payload):
    try:
        return json.loads(payload)
    except ValueError:
        return None


def twin_response(device, found, payload):
    """The answer to a twin request: the full twin we asked for at connect, or a patch's 204."""
    asked = found.rid is not None and found.rid == device.twin_rid
    if found.status >= 300:
        status.emit("twin failed", "status", found.status, "request", "get" if asked else "patch")
    if not asked or found.status != 200:
        return
    device.twin_rid = None
    twin = _json(payload)
    if isinstance(twin, dict):
        desired = twin.get("desired")
        apply_desired(device, desired, twin.get("reported") or {}, pnp.desired_version(desired))


def apply_desired(device, desired, reported, version):
    """Give each desired value to its property handler and queue the acknowledgement. With the
    full twin (`reported` given), values already acknowledged at this $version are skipped."""
    if version is None:
        return
    components = [component for component, _ in device.properties if component]
    for component, name, value in pnp.desired_items(desired, components):
        handler = device.properties.get((component, name))
        if handler is None:
            status.emit("property unhandled", "name", name, "component", component, "av", version)
            continue
        if reported is not None and pnp.acked_version(reported, component, name) == version:
            continue
        try:
            value, ac, ad = pnp.property_result(handler(value), value)
        except Exception as e:  # the handler failed: say so in the acknowledgement
            ac, ad = 500, pnp.error_payload(e)["error"]
        pnp.merge(device.reported, {name: pnp.ack(value, ac, ad, version)}, component)
        device.acks.append((name, component, version, ac))


def run_command(device, name, payload):
    """(status, result) of command `name` with the request `payload` (raw bytes)."""
    handler = device.commands.get(name)
    if handler is None:
        return 404, {"error": "unknown command: " + name}
    try:
        return pnp.command_result(handler(pnp.parse_payload(payload)))
    except Exception as e:  # the handler failed: 500 with its message
        return 500, pnp.error_payload(e)


def command(device, name, payload, rid):
    """A direct method: run it and answer with its status and JSON payload."""
    code, result = run_command(device, name, payload)
    try:
        body = json.dumps(result)
    except (TypeError, ValueError):
        code, body = 500, '{"error": "the command result is not JSON"}'
    status.emit("command", "name", name, "status", code, "via", "method")
    device.publish(hub.method_response_topic(code, rid), body, 0)


def message(device, properties, payload):
    """A cloud-to-device message: an offline command (method-name) to its command handler,
    anything else to the message handler."""
    name = properties.get("method-name")
    command_handler = name and name in device.commands
    handler = device.message_handler
    unhandled = None if command_handler or handler else "no handler"
    status.emit("c2d received", "bytes", len(payload), "method", name, reason=unhandled)
    if command_handler:
        code = run_command(device, name, payload)[0]  # nobody waits for an answer
        status.emit("command", "name", name, "status", code, "via", "c2d")
    elif handler is not None:
        try:
            handler(payload, properties)
        except Exception as e:  # the application's handler failed: the session goes on
            status.emit("error", "stage", "c2d", reason="%s %s" % (type(e).__name__, str(e)[:60]))
