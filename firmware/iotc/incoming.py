# What the hub sends: topic query strings, property bags, and the kind of each incoming hub
# message (docs/protocol.md section 2): "c2d", "method", "twin-response" or "twin-desired". Pure:
# no sockets. Loaded when the first message arrives, so a device that subscribes to nothing never
# pays for it. Constants are written where they are used: every module-level name would stay
# interned on the board for good (iotc/__init__.py).


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
    hexdigits = b"0123456789abcdefABCDEF"
    out = bytearray()
    i = 0
    while i < len(data):
        two = data[i + 1 : i + 3]
        if data[i] == 0x25 and len(two) == 2 and two[0] in hexdigits and two[1] in hexdigits:
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

    status = None  # twin response status
    rid = None  # twin response / method request id, as received
    version = None  # twin $version
    name = None  # method name, e.g. 'reboot' or 'thermostat*getMaxMin'
    properties = None  # C2D property bag, decoded

    def __init__(self, kind):
        self.kind = kind


def parse_topic(device_id, topic):
    """Classify a received hub topic (str) -> Incoming, or None if it is not one the hub sends."""
    prefix = "devices/" + device_id + "/messages/devicebound/"
    if topic.startswith(prefix):
        found = Incoming("c2d")
        found.properties = decode_bag(topic[len(prefix) :])
        return found
    kind = None
    for name, prefix in (
        ("method", "$iothub/methods/POST/"),
        ("twin-response", "$iothub/twin/res/"),
        ("twin-desired", "$iothub/twin/PATCH/properties/desired/"),
    ):
        if topic.startswith(prefix):
            kind = name
            break
    if kind is None:
        return None
    rest = topic[len(prefix) :]
    found = Incoming(kind)
    if kind == "twin-desired":
        if rest.startswith("?"):
            found.version = _int(parse_query(rest[1:]).get("$version"))
        return found
    # '{segment}/?{query}'
    cut = rest.find("/?")
    if cut <= 0:
        return None
    query = parse_query(rest[cut + 2 :])
    found.rid = query.get("$rid")
    if kind == "method":
        if not found.rid:
            return None
        found.name = unquote(rest[:cut])
        return found
    found.status = _int(rest[:cut])
    if found.status is None:
        return None
    found.version = _int(query.get("$version"))
    return found
