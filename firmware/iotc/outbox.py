# What waits on the device to go out, and what came in: the offline telemetry buffer (filled
# while the hub is out of reach, sent in order at QoS 1 after reconnecting), reported properties
# not sent yet (one twin patch), and the hub's messages for the application's handlers. Loaded
# when there is something to keep or deliver; unloaded before every TLS handshake (Device.shed).

import json
import time

from iotc import clock, hub, status, unload


def send_telemetry(device, values, properties, component):
    """Device.send_telemetry: now when online and nothing older waits, else into the buffer."""
    if device.settings is None:  # not started
        return False
    body = json.dumps(values)
    if device.stage == "online" and not device.buffer:
        from iotc import session  # loaded: the device is online

        if session.send(device, body, properties, component):
            return True
    keep(device, body, properties, component)
    return False


def produce(device):
    """Device.produce: one round of the telemetry schedule."""
    device.next_telemetry = time.ticks_add(time.ticks_ms(), device.settings.telemetry_interval * 1000)
    try:
        if device.telemetry:
            values = device.telemetry()
        else:
            from iotc.readings import board_readings

            values = board_readings(device.uptime_ms // 1000)
            unload("readings")
    except Exception as e:  # the application's callback failed: skip this round
        status.emit("error", "stage", "telemetry", reason="%s %s" % (type(e).__name__, str(e)[:60]))
        return
    if values:
        send_telemetry(device, values, None, None)


def report(device, properties, component):
    """Device.report: merge into the patch waiting to go out; send it now when online."""
    patch = device.reported
    if component:  # a component's properties go in its object, marked as one
        inner = patch.get(component)
        if not isinstance(inner, dict):
            inner = patch[component] = {"__t": "c"}
        patch = inner
    for name in properties:
        patch[name] = properties[name]
    return device.stage == "online" and flush_reported(device)


def connected(device, now):
    """Right after each hub connection: start the telemetry schedule (first connection of a
    boot), queue the device information (once per boot) and send the reported properties;
    then read the whole twin, on every connection (desired changes made while the link was down
    are sent to nobody), so each desired value not acknowledged yet is applied and acknowledged:
    reported first, so the twin read already holds them. Last, the application's hook."""
    if device.next_telemetry is None:
        device.next_telemetry = now
    if device.info:
        from iotc.readings import device_info

        device.info = False
        report(device, device_info(), None)
        unload("readings")
    if not flush_reported(device):
        return
    if device.properties:
        device.rid += 1
        device.twin_rid = str(device.rid)
        if not device.publish(hub.twin_get_topic(device.twin_rid), "", 0):
            return
    if device.on_connected is not None:
        device.on_connected(device)


def keep(device, body, properties, component):
    """Put a message into the buffer, stamped with the time it was made (when the clock is
    set); a full buffer drops its oldest message and counts it."""
    now = clock.unix_time()
    ring = device.buffer
    ring.append((body, properties, component, now if clock.clock_is_set(now) else None))
    size = device.settings.buffer_size
    if len(ring) > size:
        ring.pop(0)
        device.dropped += 1
        if device.dropped & (device.dropped - 1) == 0:  # at 1, 2, 4, 8, ...: a trail, not a flood
            status.emit("buffer dropped", "n", device.dropped, "size", size)


def deliver(device):
    """Online: the hub's messages to their handlers, then the reported patch, then the buffer.
    False when the session broke on the way (the rest waits for the next one)."""
    handle_inbox(device)
    return device.stage == "online" and flush_reported(device) and flush_buffer(device)


def flush_buffer(device):
    """Send the offline buffer oldest first, at QoS 1: a message leaves the buffer only once the
    hub acknowledged it. False when the session broke (the rest waits for the next one)."""
    ring = device.buffer
    if not ring:
        return True
    from iotc import session  # loaded already: this runs online

    count = 0
    while ring:
        body, properties, component, created = ring[0]
        created = created and clock.iso_utc(created)
        if not session.send(device, body, properties, component, created, 1):
            return False
        ring.pop(0)
        count += 1
    status.emit("buffer flushed", "n", count, "dropped", device.dropped)
    if device.dropped != device.dropped_reported:  # the count, in the twin, for the operator
        device.dropped_reported = device.dropped
        report(device, {"bufferDropped": device.dropped}, None)
    return True


def flush_reported(device):
    """Send the reported properties waiting on the device as one twin patch (QoS 1). False when
    the session broke; the patch then waits for the next connection."""
    patch = device.reported
    if not patch:
        return True
    device.reported = {}
    device.rid += 1
    if not device.publish(hub.twin_patch_topic(device.rid), json.dumps(patch), 1):
        for name in device.reported:  # anything newer replaces what did not go out
            patch[name] = device.reported[name]
        device.reported = patch
        return False
    for name, component, av, ac in device.acks:
        status.emit("property acked", "name", name, "component", component, "av", av, "ac", ac)
    device.acks = []
    return True


def handle_inbox(device):
    """Hand what the hub sent to the handler of its kind, outside umqtt's wait, so handlers may
    publish (a QoS 1 publish inside umqtt's callback would swallow another publish's PUBACK)."""
    inbox = device.inbox
    while inbox and device.stage == "online":
        found, payload = inbox.pop(0)
        handler = device.handlers.get(found.kind)
        if handler is not None:
            handler(device, found, payload)
