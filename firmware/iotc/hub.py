# IoT Hub over MQTT: CONNECT fields, telemetry, twin, direct-method and cloud-to-device topics.
# Pure: no sockets, no clock (protocol spec section 2).

from iotc import VERSION
from iotc.sas import quote

API_VERSION = "2021-04-12"
JSON_BAG = "$.ct=application%2Fjson&$.ce=utf-8"  # IoT Central needs both on telemetry

TWIN_RESPONSE_SUBSCRIBE = "$iothub/twin/res/#"
TWIN_DESIRED_SUBSCRIBE = "$iothub/twin/PATCH/properties/desired/#"
METHODS_SUBSCRIBE = "$iothub/methods/POST/#"
_TWIN_RESPONSE = "$iothub/twin/res/"
_TWIN_DESIRED = "$iothub/twin/PATCH/properties/desired/"
_METHOD_REQUEST = "$iothub/methods/POST/"
_HEX = b"0123456789abcdefABCDEF"


def username(hub, device_id, model_id=None):
    name = "%s/%s/?api-version=%s" % (hub, device_id, API_VERSION)
    if model_id:
        name += "&model-id=" + quote(model_id)
    return name + "&DeviceClientType=" + quote("iotc-micropython/" + VERSION)


def parse_query(query):
    """'a=1&b=2' -> {'a': '1', 'b': '2'} (values left encoded)."""
    fields = {}
    for part in query.split("&"):
        if part:
            cut = part.find("=")
            if cut < 0:
                fields[part] = ""
            else:
                fields[part[:cut]] = part[cut + 1 :]
    return fields


def unquote(text):
    """Decode %XX escapes as UTF-8 ('+' stays '+': Azure property bags are percent-encoded only)."""
    if "%" not in text:
        return text
    data = text.encode()
    out = bytearray()
    i = 0
    while i < len(data):
        value = _hex_byte(data[i + 1 : i + 3]) if data[i] == 0x25 else None
        if value is None:
            out.append(data[i])
            i += 1
        else:
            out.append(value)
            i += 3
    return bytes(out).decode()


def _hex_byte(two):
    if len(two) != 2 or two[0] not in _HEX or two[1] not in _HEX:
        return None
    return int(two, 16)


def encode_bag(properties):
    """[(name, value), ...] or a dict -> url-encoded 'k=v&k=v'."""
    items = properties.items() if isinstance(properties, dict) else properties
    return "&".join(quote(str(name)) + "=" + quote(str(value)) for name, value in items)


def decode_bag(bag):
    """'k=v&k=v' -> {name: value}, decoded."""
    fields = parse_query(bag)
    decoded = {}
    for name in fields:
        decoded[unquote(name)] = unquote(fields[name])
    return decoded


def telemetry_topic(device_id, properties=None, component=None):
    """devices/{id}/messages/events/ with $.ct/$.ce JSON markers, $.sub and user properties."""
    topic = "devices/%s/messages/events/%s" % (device_id, JSON_BAG)
    if component:
        topic += "&$.sub=" + quote(component)
    if properties:
        topic += "&" + encode_bag(properties)
    return topic


def c2d_subscribe_topic(device_id):
    return "devices/%s/messages/devicebound/#" % device_id


def twin_get_topic(rid):
    return "$iothub/twin/GET/?$rid=%s" % rid


def twin_patch_topic(rid):
    return "$iothub/twin/PATCH/properties/reported/?$rid=%s" % rid


def method_response_topic(status, rid):
    return "$iothub/methods/res/%d/?$rid=%s" % (status, rid)


# Kinds of incoming message.
C2D = "c2d"
METHOD = "method"
TWIN_RESPONSE = "twin-response"
TWIN_DESIRED = "twin-desired"


class Incoming:
    """What an incoming topic means. Fields not relevant to the kind stay None."""

    def __init__(self, kind):
        self.kind = kind
        self.status = None  # twin response status
        self.rid = None  # twin response / method request id (kept as the text received)
        self.version = None  # twin $version
        self.name = None  # method name, e.g. 'reboot' or 'thermostat*getMaxMin'
        self.properties = None  # C2D property bag, decoded


def parse_topic(device_id, topic):
    """Classify a received topic (str) -> Incoming, or None if it is not one the hub sends."""
    c2d_prefix = "devices/%s/messages/devicebound/" % device_id
    if topic.startswith(c2d_prefix):
        found = Incoming(C2D)
        found.properties = decode_bag(topic[len(c2d_prefix) :])
        return found
    if topic.startswith(_METHOD_REQUEST):
        rest = topic[len(_METHOD_REQUEST) :]
        cut = rest.find("/?")
        if cut <= 0:
            return None
        found = Incoming(METHOD)
        found.name = unquote(rest[:cut])
        found.rid = parse_query(rest[cut + 2 :]).get("$rid")
        return found if found.rid else None
    if topic.startswith(_TWIN_RESPONSE):
        rest = topic[len(_TWIN_RESPONSE) :]
        cut = rest.find("/?")
        if cut <= 0:
            return None
        try:
            status = int(rest[:cut])
        except ValueError:
            return None
        fields = parse_query(rest[cut + 2 :])
        found = Incoming(TWIN_RESPONSE)
        found.status = status
        found.rid = fields.get("$rid")
        found.version = _version(fields.get("$version"))
        return found
    if topic.startswith(_TWIN_DESIRED):
        rest = topic[len(_TWIN_DESIRED) :]
        found = Incoming(TWIN_DESIRED)
        if rest.startswith("?"):
            found.version = _version(parse_query(rest[1:]).get("$version"))
        return found
    return None


def _version(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
