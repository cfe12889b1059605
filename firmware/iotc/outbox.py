# What waits on the device, off the hot path: telemetry kept in the offline buffer while the hub
# is out of reach (session.py sends it, in order at QoS 1, after reconnecting) and reported
# properties merged into the patch waiting to go out. Loaded when needed; unloaded before every
# TLS handshake (Device.shed) and after each use online, when the TLS connection's buffers leave
# the least room.

from iotc import emit


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
    from iotc import clock

    now = clock.unix_time()
    ring = device.buffer
    ring.append((body, properties, component, now if clock.clock_is_set(now) else None))
    size = device.settings.buffer_size
    if len(ring) > size:
        ring.pop(0)
        device.dropped += 1
        if device.dropped & (device.dropped - 1) == 0:  # at 1, 2, 4, 8, ...: a trail, not a flood
            emit("buffer dropped", "n", device.dropped, "size", size)
