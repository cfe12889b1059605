# The hub and online stages: connect to the assigned IoT Hub with a fresh token, then keep the
# session alive — renew it before the token expires, ping when quiet, send telemetry when due,
# send what waited offline (reported properties, buffered telemetry), and hand what the hub sends
# to the device's handlers. Loaded from the first hub connection on; what the session keeps
# between steps is device.session (app.SessionRecord), so this module can be unloaded between
# sessions.

import errno
import json
import time

from iotc import emit, hub, unload, use
from iotc.link import Link, MQTTException, describe


def step(device):
    if device.stage == "hub":
        connect(device)
    else:
        serve(device)


def connect(device):
    s = device.settings
    renewing = device.session.renewing
    device.session.renewing = False
    if not renewing:
        emit("hub connecting", "host", s.hub, "device", s.assigned_id)
    user = hub.username(s.hub, s.assigned_id, s.model_id)
    secret = device.password(s.hub)  # everything else is shed: the TLS handshake is the peak
    if secret is None:  # the clock is unset: nothing can be signed or verified
        return
    link = Link(
        s.hub, s.hub_port, s.assigned_id, user, secret[0], device.tls,
        lambda topic, payload: receive(device, topic, payload), s.keepalive, s.response_timeout,
    )  # fmt: skip
    del user
    try:
        link.connect(False, s.connect_timeout)  # keep the session: queued C2D survives
        device.link = link
        for topic in topics(device):
            link.subscribe(topic, 1)
    except MQTTException as e:  # a failed connect closed the link itself; a failed subscribe: close()
        device.close(False)
        code = e.args[0] if e.args else 0
        emit("hub failed", "host", s.hub, "connack", code, reason="connection refused")
        device.decide("hub_refused", code)
        return
    except OSError as e:
        device.close(False)
        emit("hub failed", "host", s.hub, reason=describe(e))
        device.decide("hub_failed", describe(e))
        return
    online(device, secret[1], renewing)


def topics(device):
    """What to subscribe: the topics of the incoming kinds that have a handler (C2D's names the
    device), then the device's own `subscriptions`."""
    handlers = device.handlers
    found = [
        topic
        for kind, topic in (
            ("twin-response", "$iothub/twin/res/#"),
            ("twin-desired", "$iothub/twin/PATCH/properties/desired/#"),
            ("method", "$iothub/methods/POST/#"),
        )
        if kind in handlers
    ]
    if "c2d" in handlers:
        found.append(hub.c2d_subscribe_topic(device.settings.assigned_id))
    return found + device.subscriptions


def online(device, expiry, renewing):
    """The hub accepted the session: set its timers, say so, and do what each new session does."""
    s = device.settings
    record = device.session
    now = time.ticks_ms()
    record.online_since = device.uptime_ms  # uptime, unlike ticks, does not wrap after 6 days
    record.ping_sent = None
    record.renew_at = None if expiry is None else time.ticks_add(now, s.renew_after * 1000)
    if renewing:
        emit("token renewed", "expires", expiry, "ttl", s.token_ttl)
    else:
        emit("hub connected", "host", s.hub, "device", s.assigned_id, "expires", expiry)
    device.decide("hub_connected")
    # Start the telemetry schedule (first connection of a boot), queue the device information
    # (once per boot) and send the reported properties; then read the whole twin, on every
    # connection (desired changes made while the link was down are sent to nobody), so each
    # desired value not acknowledged yet is applied and acknowledged: reported first, so the
    # twin read already holds them. Last, the application's hook.
    if record.next_telemetry is None:
        record.next_telemetry = now
    if device.info:
        device.info = False
        device.reported.update(use("readings").device_info())  # root properties: a plain merge
        unload("readings")
    if not flush_reported(device):
        return
    if device.properties:
        record.rid += 1
        record.twin_rid = str(record.rid)
        if not publish(device, hub.twin_get_topic(record.twin_rid), "", 0):
            return
    if device.on_connected is not None:
        device.on_connected(device)


def serve(device):
    """Online: renew the session before the token expires, keep it alive, send telemetry when
    due, and wait for what the hub sends until the next of these is due."""
    link = device.link
    s = device.settings
    record = device.session
    now = time.ticks_ms()
    if record.renew_at is not None and time.ticks_diff(now, record.renew_at) >= 0:
        device.close()  # MQTT 3.1.1 has no re-authentication: reconnect with a fresh token
        record.renewing = True
        device.decide("renew")
        return
    try:
        if record.ping_sent is not None and time.ticks_diff(link.last_rx, record.ping_sent) < 0:
            if time.ticks_diff(now, record.ping_sent) > s.response_timeout * 1000:
                raise OSError(errno.ETIMEDOUT)  # no PINGRESP: the link is half-open
        elif time.ticks_diff(now, quiet_since(link)) >= s.keepalive * 500:
            link.ping()
            record.ping_sent = link.last_tx
    except OSError as e:
        lost(device, describe(e))
        return
    inbox = device.inbox
    if inbox:
        # The hub's messages, to the handler of their kind, here and not inside umqtt's wait, so
        # handlers may publish (a QoS 1 publish inside umqtt's callback would swallow another
        # publish's PUBACK).
        while inbox and device.stage == "online":
            found, payload = inbox.pop(0)
            handler = device.handlers.get(found.kind)
            if handler is not None:
                handler(device, found, payload)
        for name in ("outbox", "central", "pnp"):  # loaded again for the next message
            unload(name)
        if device.stage != "online":
            return
    if not flush_reported(device):  # what waited to go out
        return
    ring = device.buffer  # the offline buffer, oldest first, each at QoS 1: a message leaves it
    if ring:  # only once the hub acknowledged it; the rest waits when the session breaks
        count = 0
        while ring:
            body, properties, component, created = ring[0]
            if not send(device, body, properties, component, created and use("clock").iso_utc(created), 1):
                return
            ring.pop(0)
            count += 1
        unload("clock")
        emit("buffer flushed", "n", count, "dropped", device.dropped)
        if device.dropped != record.dropped_reported:  # the count, in the twin, for the operator
            record.dropped_reported = device.dropped
            device.reported["bufferDropped"] = device.dropped
    if device.telemetry is not False and time.ticks_diff(now, record.next_telemetry) >= 0:
        device.produce()
        if device.stage != "online":
            return
    # wait for what the hub sends until the next chore is due (at most a second)
    due = 0
    if not (device.inbox or device.reported or device.buffer):
        now = time.ticks_ms()
        due = time.ticks_diff(time.ticks_add(quiet_since(link), s.keepalive * 500), now)
        if record.renew_at is not None:
            due = min(due, time.ticks_diff(record.renew_at, now))
        if device.telemetry is not False:
            due = min(due, time.ticks_diff(record.next_telemetry, now))
    wait(device, max(min(due, 1000), 0))


def quiet_since(link):
    """The older of last send and last receipt: a ping is due when either is old."""
    return link.last_tx if time.ticks_diff(link.last_rx, link.last_tx) > 0 else link.last_rx


def publish(device, topic, payload, qos):
    try:
        device.link.publish(topic, payload, qos)
    except OSError as e:
        lost(device, describe(e))
        return False
    return True


def send(device, body, properties=None, component=None, created=None, qos=None):
    """Publish one telemetry message (a JSON text) at options.telemetry_qos unless `qos`."""
    s = device.settings
    if qos is None:
        qos = s.telemetry_qos
    if not publish(device, hub.telemetry_topic(s.assigned_id, properties, component, created), body, qos):
        return False
    device.sent += 1
    emit("telemetry sent", "n", device.sent, "bytes", len(body), "qos", qos)
    return True


def flush_reported(device):
    """Send the reported properties waiting on the device as one twin patch (QoS 1). False when
    the session broke; the patch then waits for the next connection."""
    patch = device.reported
    if not patch:
        return True
    device.reported = {}
    device.session.rid += 1
    if not publish(device, hub.twin_patch_topic(device.session.rid), json.dumps(patch), 1):
        device.reported = patch  # nothing reports during a publish: the hub's messages wait in the inbox
        return False
    for name, component, av, ac in device.acks:
        emit("property acked", "name", name, "component", component, "av", av, "ac", ac)
    device.acks = []
    return True


def wait(device, ms):
    """Wait up to `ms` for what the hub sends; a broken session is handled here."""
    try:
        device.link.wait(ms)
    except OSError as e:
        lost(device, describe(e))


def receive(device, topic, payload):
    """umqtt's callback for every PUBLISH of the hub: into the inbox when its kind has a handler."""
    from iotc.incoming import parse_topic

    found = parse_topic(device.settings.assigned_id, topic if isinstance(topic, str) else topic.decode())
    if found is not None and found.kind in device.handlers:
        device.inbox.append((found, payload))


def lost(device, reason):
    device.close(False)
    # Answers and requests of the broken session are void; C2D messages were acknowledged to
    # the hub already, so they are still handled after reconnecting.
    device.inbox = [item for item in device.inbox if item[0].kind == "c2d"]
    device.session.twin_rid = None
    emit("hub disconnected", "host", device.settings.hub, reason=reason)
    lasted = device.uptime_ms - device.session.online_since
    device.decide("hub_lost", lasted, reason)
