# IoT Central features on the live hub session: writable properties (applied by the
# application's handlers and acknowledged), commands (direct methods answered with a status and
# a JSON payload; offline commands as C2D messages) and cloud-to-device messages. Loaded on the
# first message for a feature the application registered (Device.on_property, on_command,
# on_message); the payload rules are in pnp.py. Handlers run here, outside umqtt's wait, so they
# may send telemetry or report properties.

import json

from iotc import emit, hub, pnp


def handle(device, found, payload):
    """What the hub sent (an incoming.Incoming and its payload) -> the application's handler."""
    kind = found.kind
    if kind == "method":
        status, body = run(device, found.name, payload)
        try:
            body = json.dumps(body)
        except (TypeError, ValueError):
            status, body = 500, '{"error": "the command result is not JSON"}'
        emit("command", "name", found.name, "status", status, "via", "method")
        device.publish(hub.method_response_topic(status, found.rid), body, 0)
    elif kind == "c2d":
        message(device, found.properties, payload)
    elif kind == "twin-desired":
        patch = pnp.parse_payload(payload)
        apply(device, patch, None, pnp.desired_version(patch, found.version))
    elif found.rid is not None and found.rid == device.session.twin_rid:  # the whole twin, asked at connect
        if found.status >= 300:
            emit("twin failed", "status", found.status, "request", "get")
        if found.status != 200:
            return
        device.session.twin_rid = None
        twin = pnp.parse_payload(payload)
        if isinstance(twin, dict):
            desired = twin.get("desired")
            apply(device, desired, twin.get("reported") or {}, pnp.desired_version(desired))
    elif found.status >= 300:  # a reported patch refused
        emit("twin failed", "status", found.status, "request", "patch")


def apply(device, desired, reported, version):
    """Give each desired value to its property handler and queue the acknowledgement. With the
    full twin (`reported` given), values already acknowledged at this $version are skipped."""
    if version is None:
        return
    components = [component for component, _ in device.properties if component]
    for component, name, value in pnp.desired_items(desired, components):
        handler = device.properties.get((component, name))
        if handler is None:
            emit("property unhandled", "name", name, "component", component, "av", version)
            continue
        if reported is not None and pnp.acked_version(reported, component, name) == version:
            continue
        try:
            value, ac, ad = pnp.property_result(handler(value), value)
        except Exception as e:  # the handler failed: say so in the acknowledgement
            ac, ad = 500, pnp.error_payload(e)["error"]
        pnp.merge(device.reported, {name: pnp.ack(value, ac, ad, version)}, component)
        device.acks.append((name, component, version, ac))


def run(device, name, payload):
    """(status, result) of command `name` with the request `payload` (raw bytes)."""
    handler = device.commands.get(name)
    if handler is None:
        return 404, {"error": "unknown command: " + name}
    try:
        return pnp.command_result(handler(pnp.parse_payload(payload)))
    except Exception as e:  # the handler failed: 500 with its message
        return 500, pnp.error_payload(e)


def message(device, properties, payload):
    """A cloud-to-device message: an offline command (method-name) to its command handler,
    anything else to the message handler."""
    name = properties.get("method-name")
    command = name and name in device.commands
    handler = device.message_handler
    unhandled = None if command or handler else "no handler"
    emit("c2d received", "bytes", len(payload), "method", name, reason=unhandled)
    if command:
        emit("command", "name", name, "status", run(device, name, payload)[0], "via", "c2d")  # no one waits
    elif handler is not None:
        try:
            handler(payload, properties)
        except Exception as e:  # the application's handler failed: the session goes on
            emit("error", "stage", "c2d", reason="%s %s" % (type(e).__name__, str(e)[:60]))
