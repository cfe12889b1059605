# Device Provisioning Service over MQTT: CONNECT fields, topics, payloads and answer parsing.
# Pure: no sockets, no clock (protocol spec section 1).

import json

from iotc import VERSION
from iotc.sas import quote

API_VERSION = "2019-03-31"
SUBSCRIBE_TOPIC = "$dps/registrations/res/#"
_RESPONSE_PREFIX = "$dps/registrations/res/"
DEFAULT_POLL_SECONDS = 3  # what the SDKs wait after "assigning" when DPS sends no retry-after


def username(id_scope, registration_id):
    return "%s/registrations/%s/api-version=%s&ClientVersion=%s" % (
        id_scope,
        registration_id,
        API_VERSION,
        quote("iotc-micropython/" + VERSION),
    )


def register_topic(rid):
    return "$dps/registrations/PUT/iotdps-register/?$rid=%d" % rid


def poll_topic(rid, operation_id):
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


def _query_value(query, name):
    """The value of `name` in 'a=1&b=2', or None."""
    for part in query.split("&"):
        if part.startswith(name + "="):
            return part[len(name) + 1 :]
    return None


def parse_response_topic(topic):
    """'$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]' -> (status, rid, retry_after),
    or None for any other topic. rid and retry_after are None when absent or malformed."""
    if not topic.startswith(_RESPONSE_PREFIX):
        return None
    rest = topic[len(_RESPONSE_PREFIX) :]
    cut = rest.find("/?")
    if cut < 0:
        return None
    status = _to_int(rest[:cut])
    if status is None:
        return None
    query = rest[cut + 2 :]
    retry_after = _to_int(_query_value(query, "retry-after"))
    if retry_after is not None and retry_after < 0:
        retry_after = None
    return status, _to_int(_query_value(query, "$rid")), retry_after


def assignment_doc(s, hub, device_id):
    """What /iotc-data/assignment.json holds after an assignment (config.cached_assignment reads it)."""
    return {"format": 1, "hub": hub, "device_id": device_id, "identity": s.cache_key}


# Kinds of answer.
ASSIGNED = "assigned"
ASSIGNING = "assigning"
FAILED = "failed"
DISABLED = "disabled"
ERROR = "error"


class Answer:
    """One DPS answer: kind, status, and what the kind carries."""

    def __init__(self, kind, status, retry_after=None):
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.operation_id = None
        self.hub = None
        self.device_id = None
        self.error_code = None
        self.message = None


def parse_answer(status, body, retry_after=None):
    """The body of an answer (bytes or str) with its topic's status -> Answer."""
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        answer = Answer(ERROR, status, retry_after)
        answer.message = "unreadable answer body"
        return answer
    if status >= 300:
        answer = Answer(ERROR, status, retry_after)
        answer.error_code = doc.get("errorCode")
        answer.message = doc.get("message")
        return answer
    state = doc.get("registrationState") or {}
    kind = doc.get("status") or state.get("status")
    if status == 202 or kind == ASSIGNING:
        answer = Answer(ASSIGNING, status, retry_after)
        answer.operation_id = doc.get("operationId")
        if not answer.operation_id:
            answer.kind = ERROR
            answer.message = "assigning answer without operationId"
        return answer
    if kind == ASSIGNED:
        answer = Answer(ASSIGNED, status, retry_after)
        answer.hub = state.get("assignedHub")
        answer.device_id = state.get("deviceId")
        if not answer.hub or not answer.device_id:
            answer.kind = ERROR
            answer.message = "assigned answer without assignedHub/deviceId"
        return answer
    if kind in (FAILED, DISABLED):
        answer = Answer(kind, status, retry_after)
        answer.error_code = state.get("errorCode")
        answer.message = state.get("errorMessage") or ("enrollment disabled" if kind == DISABLED else None)
        return answer
    answer = Answer(ERROR, status, retry_after)
    answer.message = "unexpected registration status %s" % kind
    return answer
