# Console status lines: `iotc: <event> key=value ... [reason=free text]`, one per state change
# (docs/design.md). Callers pass only non-secret values; this module only formats and prints.


def line(event, *pairs, reason=None):
    """`pairs` alternate key, value; None values are left out; spaces in values become '_'."""
    parts = ["iotc:", event]
    for i in range(0, len(pairs) - 1, 2):
        value = pairs[i + 1]
        if value is not None:
            parts.append("%s=%s" % (pairs[i], str(value).replace(" ", "_")))
    if reason:
        parts.append("reason=" + " ".join(str(reason).split()))
    return " ".join(parts)


def emit(event, *pairs, reason=None):
    print(line(event, *pairs, reason=reason))
