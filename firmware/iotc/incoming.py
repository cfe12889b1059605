# What the hub (and DPS) send: topic query strings, property bags, and the kind of each incoming
# hub message (protocol spec section 2). Pure: no sockets. Loaded when the first message
# arrives, so a device that subscribes to nothing never pays for it.

_HEX = b"0123456789abcdefABCDEF"
_TWIN_RESPONSE = "$iothub/twin/res/"
_TWIN_DESIRED = "$iothub/twin/PATCH/properties/desired/"
_METHOD_REQUEST = "$iothub/methods/POST/"

# Kinds of incoming hub message.
C2D = "c2d"
METHOD = "method"
TWIN_RESPONSE = "twin-response"
TWIN_DESIRED = "twin-desired"


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
        two = data[i + 1 : i + 3]
        if data[i] == 0x25 and len(two) == 2 and two[0] in _HEX and two[1] in _HEX:
            out.append(int(two, 16))
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out).decode()


def decode_bag(bag):
    """'k=v&k=v' -> {name: value}, decoded."""
    fields = parse_query(bag)
    decoded = {}
    for name in fields:
        decoded[unquote(name)] = unquote(fields[name])
    return decoded


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


class Incoming:
    """What an incoming topic means. Fields not relevant to the kind stay None."""

    def __init__(self, kind):
        self.kind = kind
        self.status = None  # twin response status
        self.rid = None  # twin response / method request id, as received
        self.version = None  # twin $version
        self.name = None  # method name, e.g. 'reboot' or 'thermostat*getMaxMin'
        self.properties = None  # C2D property bag, decoded


def _split(rest):
    """'{segment}/?{query}' -> (segment, query fields), or None."""
    cut = rest.find("/?")
    if cut <= 0:
        return None
    return rest[:cut], parse_query(rest[cut + 2 :])


def parse_topic(device_id, topic):
    """Classify a received hub topic (str) -> Incoming, or None if it is not one the hub sends."""
    c2d_prefix = "devices/" + device_id + "/messages/devicebound/"
    if topic.startswith(c2d_prefix):
        found = Incoming(C2D)
        found.properties = decode_bag(topic[len(c2d_prefix) :])
        return found
    if topic.startswith(_METHOD_REQUEST):
        parts = _split(topic[len(_METHOD_REQUEST) :])
        if parts is None or not parts[1].get("$rid"):
            return None
        found = Incoming(METHOD)
        found.name = unquote(parts[0])
        found.rid = parts[1]["$rid"]
        return found
    if topic.startswith(_TWIN_RESPONSE):
        parts = _split(topic[len(_TWIN_RESPONSE) :])
        status = _int(parts[0]) if parts else None
        if status is None:
            return None
        found = Incoming(TWIN_RESPONSE)
        found.status = status
        found.rid = parts[1].get("$rid")
        found.version = _int(parts[1].get("$version"))
        return found
    if topic.startswith(_TWIN_DESIRED):
        rest = topic[len(_TWIN_DESIRED) :]
        found = Incoming(TWIN_DESIRED)
        if rest.startswith("?"):
            found.version = _int(parse_query(rest[1:]).get("$version"))
        return found
    return None
