# The dps stage: one DPS registration over MQTT/TLS — connect, subscribe, register, poll while
# "assigning" (honouring retry-after) — then cache the assignment and let the policy pick the
# next stage. Loaded only while registering, so its code costs no RAM during the hub session.

import errno
import gc
import time

from iotc import dps, emit, unload, use
from iotc.link import Link, MQTTException, describe


def step(device):
    """One registration attempt for the device's identity, and the decision that follows."""
    s = device.settings
    secret = device.password()  # everything else is shed: the TLS handshake is the peak
    if secret is None:  # the clock is unset: nothing can be signed or verified
        return
    outcome, detail = run(s, secret[0], device.tls)
    secret = None
    unload("dps")  # the answer is plain values by now; make room for the policy
    gc.collect()
    if outcome == "answer":
        kind, status, retry_after, hub, device_id = detail
        if kind == "assigned":
            s.hub, s.assigned_id = hub, device_id
        device.decide("dps_answer", kind, status, retry_after)
    elif outcome == "refused":
        device.decide("dps_refused", detail)
    else:
        device.decide("dps_failed", detail)


def run(s, password, ctx):
    """Register the identity `s` with DPS. Returns ("answer", (kind, status, retry_after, hub,
    device_id)) for any final answer (see dps.Answer), ("refused", connack code) or ("failed",
    reason) when the connection did not get that far."""
    emit("dps registering", "host", s.dps_host, "scope", s.id_scope, "device", s.device_id)
    inbox = []
    link = Link(
        s.dps_host, s.dps_port, s.device_id, dps.username(s.id_scope, s.device_id), password, ctx,
        lambda topic, body: inbox.append((topic, body)), s.keepalive, s.response_timeout,
    )  # fmt: skip
    del password
    try:
        link.connect(True, s.connect_timeout)  # DPS keeps no sessions
        link.subscribe(dps.SUBSCRIBE_TOPIC, 1)
        answer = exchange(s, link, inbox)
    except MQTTException as e:
        link.close(False)
        code = e.args[0] if e.args else 0
        emit("dps failed", "connack", code, reason="connection refused")
        return "refused", code
    except OSError as e:
        link.close(False)
        reason = describe(e)
        emit("dps failed", reason=reason)
        return "failed", reason
    link.close()
    if answer.kind == "assigned":
        emit("dps assigned", "hub", answer.hub, "device", answer.device_id)
        try:
            use("files").save_assignment(s, dps.assignment_doc(s, answer.hub, answer.device_id))
        except OSError as e:  # only the next boot's shortcut is lost
            emit("cache failed", reason="OSError %s" % e.args[0])
        unload("files")
    else:
        emit(
            "dps failed", "status", answer.status, "result", answer.kind, "code", answer.error_code,
            "retry_after", answer.retry_after, reason=answer.message,
        )  # fmt: skip
    return "answer", (answer.kind, answer.status, answer.retry_after, answer.hub, answer.device_id)


def exchange(s, link, inbox):
    """Publish the registration and poll until a final answer or the dps_timeout deadline."""
    deadline = time.ticks_add(time.ticks_ms(), s.dps_timeout * 1000)
    rid = 1
    link.publish(dps.register_topic(rid), dps.register_payload(s.device_id, s.model_id), 1)
    said_assigning = False
    while True:
        answer = None
        while inbox and answer is None:
            topic, body = inbox.pop(0)
            parsed = dps.parse_response_topic(topic.decode() if isinstance(topic, bytes) else topic)
            if parsed is not None and parsed[1] == rid:
                answer = dps.parse_answer(parsed[0], body, parsed[2])
        if answer is None:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                raise OSError(errno.ETIMEDOUT)
            link.wait(min(left, 1000))
            continue
        if answer.kind != "assigning":
            return answer
        # retry-after (3 s, as the SDKs, when DPS sends none), clipped to 60 s: the deadline rules
        delay = min(max(answer.retry_after or 3, 1), 60)
        if not said_assigning:
            emit("dps assigning", "retry_after", delay)
            said_assigning = True
        # keep the link serviced for `delay`, but not past the deadline (answers are kept)
        until = time.ticks_add(time.ticks_ms(), delay * 1000)
        if time.ticks_diff(deadline, until) < 0:
            until = deadline
        while True:
            left = time.ticks_diff(until, time.ticks_ms())
            if left <= 0:
                break
            link.wait(min(left, 1000))
        rid += 1
        link.publish(dps.poll_topic(rid, answer.operation_id), "", 1)
