# IoT Central / Plug and Play conventions (docs/protocol.md section 4), what goes in and out of the
# twin and the direct methods: desired properties found in a patch or a full twin, writable
# property acknowledgements, components, command names and results. Pure: no sockets, no clock,
# no globals; imports on CPython and MicroPython. Loaded by central.py while it handles something.
# A command in a component is the direct method 'component*name'; {"comp": {"__t": "c", ...}}
# marks a component in the twin.


def parse_payload(body):
    """A method or C2D body -> its JSON value; text that is not JSON stays text; empty -> None."""
    import json

    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        pass
    try:
        return body.decode() if isinstance(body, (bytes, bytearray)) else body
    except UnicodeError:  # binary: the handler gets the bytes
        return bytes(body)


def desired_items(desired, components):
    """A desired patch or the twin's desired section -> [(component, name, value), ...]: root
    properties with component None, and the properties of every component, i.e. a key named in
    `components` or an object marked __t=c. Keys starting with '$' and null values are skipped."""
    items = []
    if not isinstance(desired, dict):
        return items
    for key in desired:
        value = desired[key]
        if key[:1] == "$" or value is None:
            continue
        if isinstance(value, dict) and (key in components or value.get("__t") == "c"):
            for name in value:
                if name != "__t" and name[:1] != "$" and value[name] is not None:
                    items.append((key, name, value[name]))
        else:
            items.append((None, key, value))
    return items


def desired_version(desired, fallback=None):
    """$version of a desired patch or section (the topic's $version is the fallback)."""
    version = desired.get("$version") if isinstance(desired, dict) else None
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    return fallback


def acked_version(reported, component, name):
    """The `av` of the acknowledgement of `name` (in `component`) on the reported side, or None."""
    if not isinstance(reported, dict):
        return None
    if component:
        reported = reported.get(component)
        if not isinstance(reported, dict):
            return None
    entry = reported.get(name)
    if isinstance(entry, dict):
        av = entry.get("av")
        if isinstance(av, int) and not isinstance(av, bool):
            return av
    return None


def property_result(result, value):
    """What a writable-property handler returned -> (value, ac, ad). None: accepted as sent; a
    tuple (value, ac) or (value, ac, ad): as given; anything else: the value actually applied."""
    if result is None:
        return value, 200, "completed"
    if isinstance(result, tuple) and 2 <= len(result) <= 3:
        ac = result[1]
        if isinstance(ac, bool) or not isinstance(ac, int):
            raise ValueError("ac must be a whole number such as 200 or 400")
        ad = result[2] if len(result) == 3 else ("completed" if ac < 300 else "refused")
        return result[0], ac, str(ad)
    return result, 200, "completed"


def ack(value, ac, ad, av):
    """A writable property acknowledgement as IoT Central expects it."""
    return {"value": value, "ac": ac, "ad": ad, "av": av}


def merge(patch, properties, component=None):
    """Merge `properties` into the reported patch `patch` (in place), inside `component` when
    given (marked __t=c). Returns `patch`."""
    target = patch
    if component:
        target = patch.get(component)
        if not isinstance(target, dict):
            target = patch[component] = {"__t": "c"}
    for name in properties:
        target[name] = properties[name]
    return patch


def command_result(result):
    """What a command handler returned -> (status, payload): a tuple (status, payload) as given;
    anything else is the payload of a 200 answer."""
    if isinstance(result, tuple) and len(result) == 2:
        status = result[0]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
            raise ValueError("status must be a whole number such as 200 or 400")
        return status, result[1]
    return 200, result


def error_payload(error):
    """{"error": "ValueError: message"} for a handler that raised (kept short)."""
    text = str(error)
    name = type(error).__name__
    return {"error": (name + ": " + text if text else name)[:200]}
