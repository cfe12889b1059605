# Identity, options and Wi-Fi settings validated from parsed file contents (docs/design.md,
# on-board file layout). Pure: no file access, no clock. Used once at start and then unloaded,
# so the results are plain records without methods. Every problem raises ConfigError naming the
# field and the fix, never a secret. Constants are written where they are used: every module-level
# name would stay interned on the board for good (iotc/__init__.py).

from iotc import ConfigError

FIX = "; re-provision the board (iotcprov provision)"
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

# The tunable options: name, default, smallest and largest allowed (whole seconds or counts).
OPTIONS = (
    ("telemetry_interval", 10, 1, 86400),
    ("telemetry_qos", 1, 0, 1),
    ("keepalive", 60, 10, 1200),
    ("token_ttl", 3600, 20, 86400),
    ("token_margin", 120, 5, 3600),
    ("connect_timeout", 20, 2, 120),
    ("response_timeout", 30, 2, 300),
    ("dps_timeout", 120, 10, 1800),
    ("hub_failures_before_dps", 10, 1, 1000),
    ("backoff_min", 1, 1, 60),
    ("backoff_max", 100, 2, 3600),
    ("jitter_max", 5, 0, 60),
    ("terminal_wait", 3600, 0, 604800),
    ("wifi_timeout", 20, 1, 300),
    ("ntp_attempts", 2, 1, 10),
    ("buffer_size", 20, 0, 500),
)


class Record:
    """Plain attributes; no methods, so holding one does not keep this module loaded."""


def _fail(name, problem):
    raise ConfigError(name + " " + problem + FIX)


def _string(doc, name, required=True):
    value = doc.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        _fail(name, "must be a non-empty string")
    return value


def _number(doc, name, default, low, high, label=None):
    value = doc.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(label or name, "must be a whole number %d-%d" % (low, high))
    return value


def valid_registration_id(text):
    """DPS rules: 1-128 of alnum - . _ : and the last one alnum or '-'."""
    if not isinstance(text, str) or not 0 < len(text) <= 128:
        return False
    for ch in text:
        if ch not in _ALNUM and ch not in "-._:":
            return False
    return text[-1] in _ALNUM or text[-1] == "-"


def _file_name(value, name):
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        _fail(name, "must be a file name inside the identity folder")
    return value


def options(doc=None, record=None):
    """The tunable timings of identity.json's "options" (defaults for what is absent), into
    `record` (a new one when None); unknown names are ignored so newer hosts can add options."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        _fail("options", "must be an object")
    if record is None:
        record = Record()
    for name, default, low, high in OPTIONS:
        setattr(record, name, _number(doc, name, default, low, high, "options." + name))
    if record.backoff_max < record.backoff_min:
        _fail("options.backoff_max", "must not be below options.backoff_min")
    servers = doc.get("ntp_servers", ("pool.ntp.org", "time.google.com", "time.cloudflare.com"))
    if not isinstance(servers, (list, tuple)) or not servers:
        _fail("options.ntp_servers", "must be a non-empty list of host names")
    for host in servers:
        if not isinstance(host, str) or not host or " " in host:
            _fail("options.ntp_servers", "must be a non-empty list of host names")
    record.ntp_servers = tuple(servers)
    # The watchdog (seconds, 0 = off; on by default, 120 s, on an ESP32 only) must outlast the
    # longest wait that cannot feed it: a connect or one read, plus 10 s for DNS and TLS arithmetic.
    import sys

    seconds = _number(doc, "watchdog", 120 if sys.platform == "esp32" else 0, 0, 3600, "options.watchdog")
    low = max(record.connect_timeout, record.response_timeout) + 10
    if seconds and "watchdog" not in doc:
        seconds = max(seconds, low)  # the default outlasts long timeouts rather than refusing them
    if 0 < seconds < low:
        _fail(
            "options.watchdog",
            "must be 0 (off) or %d-3600 s: 10 s above connect_timeout and response_timeout" % low,
        )
    record.watchdog = seconds
    # A SAS session is renewed token_margin seconds before expiry, but at most a fifth of the
    # token's life early, so short test tokens are still used for a while.
    record.renew_after = record.token_ttl - min(record.token_margin, record.token_ttl // 5)
    return record


def identity(doc, folder):
    """identity.json of the active identity folder `folder` -> a record with every field and,
    flattened into it, the options."""
    if not isinstance(doc, dict):
        raise ConfigError("must hold a JSON object" + FIX)
    if doc.get("format") != 1:
        _fail("format", "must be 1 (the identity format this firmware reads)")
    record = Record()
    record.folder = folder
    record.id_scope = _string(doc, "id_scope")
    for ch in record.id_scope:
        if ch not in _ALNUM:
            _fail("id_scope", "must be letters and digits only")
    record.device_id = _string(doc, "device_id")
    if not valid_registration_id(record.device_id):
        _fail("device_id", "must be 1-128 letters, digits, '-', '.', '_' or ':'")
    record.auth = doc.get("auth")
    if record.auth not in ("sas", "x509"):
        _fail("auth", "must be 'sas' or 'x509'")
    record.dps_host = _string(doc, "dps_host")
    if " " in record.dps_host or "/" in record.dps_host:
        _fail("dps_host", "must be a host name")
    record.dps_port = _number(doc, "dps_port", 8883, 1, 65535)
    record.hub_port = _number(doc, "hub_port", 8883, 1, 65535)
    record.model_id = _string(doc, "model_id", False)
    if record.model_id is not None and not record.model_id.startswith("dtmi:"):
        _fail("model_id", "must be a DTMI such as dtmi:com:example:Thermostat;1, or null")
    record.fingerprint = _string(doc, "fingerprint")
    trust = doc.get("trust")
    if not isinstance(trust, list) or not trust:
        _fail("trust", "must list at least one root certificate file (root-0.der)")
    record.trust = [_file_name(name, "trust") for name in trust]
    if record.auth == "x509":
        record.cert = _file_name(doc.get("cert"), "cert")
        record.key = _file_name(doc.get("key"), "key")
    else:
        record.cert = None
        record.key = _file_name(doc.get("key", "device.key"), "key")
    # What an assignment depends on: a change in any of these means DPS again.
    record.cache_key = "|".join(
        (record.fingerprint, record.id_scope, record.device_id, record.dps_host, folder)
    )
    options(doc.get("options"), record)
    return record


def wifi(doc):
    """/iotc/wifi.json -> (ssid, password)."""
    if not isinstance(doc, dict):
        raise ConfigError("must hold a JSON object with ssid and password" + FIX)
    ssid = doc.get("ssid")
    password = doc.get("password", "")
    if not isinstance(ssid, str) or not ssid:
        _fail("ssid", "must be a non-empty string")
    if not isinstance(password, str):
        _fail("password", "must be a string")
    return ssid, password


def cached_assignment(doc, record):
    """(hub, device_id) from an assignment cache document, or (None, why-not)."""
    if not isinstance(doc, dict) or doc.get("format") != 1:
        return None, "no-cache"
    hub = doc.get("hub")
    device_id = doc.get("device_id")
    if not isinstance(hub, str) or not hub or not valid_registration_id(device_id):
        return None, "cache-invalid"
    if doc.get("identity") != record.cache_key:
        return None, "identity-changed"
    return hub, device_id
