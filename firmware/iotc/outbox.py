# What waits on the device, off the hot path: telemetry kept in the offline buffer while the hub
# is out of reach (session.py sends it, in order at QoS 1, after reconnecting), reported
# properties merged into the patch waiting to go out, and the hub's messages handed to the
# application's handlers. Loaded when needed; unloaded before every TLS handshake (Device.shed)
# and after each use online, when the TLS connection's buffers leave the least room.

from iotc import clock, status


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
    if device.stage != "online":
        return False
    from iotc import session  # loaded: the device is online

    return session.flush_reported(device)


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


def handle_inbox(device):
    """Hand what the hub sent to the handler of its kind, outside umqtt's wait, so handlers may
    publish (a QoS 1 publish inside umqtt's callback would swallow another publish's PUBACK)."""
    inbox = device.inbox
    while inbox and device.stage == "online":
        found, payload = inbox.pop(0)
        handler = device.handlers.get(found.kind)
        if handler is not None:
            handler(device, found, payload)
