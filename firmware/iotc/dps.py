# Device Provisioning Service over MQTT: CONNECT fields, topics, payloads and answer parsing.
# Pure: no sockets, no clock (docs/protocol.md section 1). Constants are written where they are
# used: every module-level name would stay interned on the board for good (iotc/__init__.py).
#
# Kinds of answer: "assigned", "assigning" (poll again), "failed", "disabled", "error".

import json

from iotc import VERSION

SUBSCRIBE_TOPIC = "$dps/registrations/res/#"


def username(id_scope, registration_id):
    # ClientVersion is quote("iotc-micropython/" + VERSION): VERSION is digits and dots
    return "%s/registrations/%s/api-version=2019-03-31&ClientVersion=iotc-micropython%%2F%s" % (
        id_scope,
        registration_id,
        VERSION,
    )


def register_topic(rid):
    return "$dps/registrations/PUT/iotdps-register/?$rid=%d" % rid


def poll_topic(rid, operation_id):
    from iotc.sas import quote

    return "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=%d&operationId=%s" % (
        rid,
        quote(operation_id),
    )


def register_payload(registration_id, model_id=None):
    body = {"registrationId": registration_id}
    if model_id:
        body["payload"] = {"modelId": model_id}
    return json.dumps(body)


def _to_int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def parse_response_topic(topic):
    """'$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]' -> (status, rid, retry_after),
    or None for any other topic. rid and retry_after are None when absent or malformed."""
    if not topic.startswith("$dps/registrations/res/"):
        return None
    rest = topic[23:]  # after the prefix
    cut = rest.find("/?")
    if cut < 0:
        return None
    status = _to_int(rest[:cut])
    if status is None:
        return None
    rid = retry_after = None
    for part in rest[cut + 2 :].split("&"):
        if part.startswith("$rid="):
            rid = _to_int(part[5:])
        elif part.startswith("retry-after="):
            retry_after = _to_int(part[12:])
    if retry_after is not None and retry_after < 0:
        retry_after = None
    return status, rid, retry_after


def assignment_doc(s, hub, device_id):
    """What /iotc-data/assignment.json holds after an assignment (config.cached_assignment reads it)."""
    return {"format": 1, "hub": hub, "device_id": device_id, "identity": s.cache_key}


class Answer:
    """One DPS answer: kind, status, and what the kind carries."""

    def __init__(self, kind, status, retry_after=None, message=None):
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.operation_id = None
        self.hub = None
        self.device_id = None
        self.error_code = None
        self.message = message


def parse_answer(status, body, retry_after=None):
    """The body of an answer (bytes or str) with its topic's status -> Answer."""
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return Answer("error", status, retry_after, "unreadable answer body")
    if status >= 300:
        answer = Answer("error", status, retry_after, doc.get("message"))
        answer.error_code = doc.get("errorCode")
        return answer
    state = doc.get("registrationState") or {}
    kind = doc.get("status") or state.get("status")
    if status == 202 or kind == "assigning":
        answer = Answer("assigning", status, retry_after)
        answer.operation_id = doc.get("operationId")
        if not answer.operation_id:
            answer.kind = "error"
            answer.message = "assigning answer without operationId"
        return answer
    if kind == "assigned":
        answer = Answer(kind, status, retry_after)
        answer.hub = state.get("assignedHub")
        answer.device_id = state.get("deviceId")
        if not answer.hub or not answer.device_id:
            answer.kind = "error"
            answer.message = "assigned answer without assignedHub/deviceId"
        return answer
    if kind in ("failed", "disabled"):
        message = state.get("errorMessage") or ("enrollment disabled" if kind == "disabled" else None)
        answer = Answer(kind, status, retry_after, message)
        answer.error_code = state.get("errorCode")
        return answer
    return Answer("error", status, retry_after, "unexpected registration status %s" % kind)
