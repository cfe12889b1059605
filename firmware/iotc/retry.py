# Retry timing and error classification (protocol spec section 5). Pure: the caller supplies
# randomness and does the waiting.

RETRY = "retry"  # worth another try after a delay
REFUSED = "refused"  # credentials refused: never retried in a loop
TERMINAL = "terminal"  # the service says no for good (bad request, not found, disabled, ...)


def classify_status(status):
    """A DPS/hub answer status: 429, 408 and 5xx are transient; other 4xx are final."""
    if status == 429 or status == 408 or status >= 500:
        return RETRY
    if status in (401, 403):
        return REFUSED
    return TERMINAL


def classify_connack(code):
    """A refused CONNACK return code: 4 (bad user name or password) and 5 (not authorized) are
    credential errors, 3 (server unavailable) is transient, 1 and 2 are our own fault."""
    if code in (4, 5):
        return REFUSED
    if code in (1, 2):
        return TERMINAL
    return RETRY


def jitter_ms(max_seconds, random16):
    """Spread `random16` (0..65535, from os.urandom) over 0..max_seconds*1000 ms."""
    return random16 * max_seconds * 1000 // 65536


def backoff_ms(attempt, min_seconds, max_seconds, jitter):
    """Exponential backoff: min, 2*min, 4*min, ... capped at max, plus `jitter` ms."""
    step = min_seconds * 1000
    cap = max_seconds * 1000
    while attempt > 0 and step < cap:
        step *= 2
        attempt -= 1
    return min(step, cap) + jitter


def retry_ms(attempt, options, random16, retry_after=None):
    """The wait before the next try: the backoff, or the service's retry-after if longer; jitter
    is added either way so a fleet throttled together does not come back together."""
    jitter = jitter_ms(options.jitter_max, random16)
    delay = backoff_ms(attempt, options.backoff_min, options.backoff_max, jitter)
    if retry_after is not None and retry_after * 1000 + jitter > delay:
        delay = retry_after * 1000 + jitter
    return delay
