# Runs ON the MicroPython unix port (MICROPYPATH includes firmware/): reads one JSON request per
# line from stdin, answers one JSON line on stdout, until stdin closes. Used by the parity tests.
import binascii
import json
import sys

from iotc import sas


def answer(request):
    op = request["op"]
    if op == "sas":
        key_b64 = request["key"]
        device_id = request["device_id"]
        expiry = request["expiry"]
        # Derivation parity without a derive function on the board: the same primitives.
        derived = sas.b64encode(sas.hmac_sha256(binascii.a2b_base64(key_b64), device_id.encode()))
        return {
            "derived": derived,
            "dps": sas.dps_token(key_b64, request["id_scope"], device_id, expiry),
            "hub": sas.hub_token(key_b64, request["hub"], device_id, expiry),
        }
    if op == "hmac":
        mac = sas.hmac_sha256(binascii.unhexlify(request["key"]), binascii.unhexlify(request["msg"]))
        return {"mac": binascii.hexlify(mac).decode()}
    if op == "decode_key":
        try:
            return {"raw": binascii.hexlify(sas.decode_key(request["key"])).decode()}
        except ValueError as error:
            return {"refused": str(error)}
    if op == "quote":
        return {"quoted": sas.quote(request["text"])}
    return {"error": "unknown op " + op}


while True:
    line = sys.stdin.readline()
    if not line:
        break
    try:
        reply = answer(json.loads(line))
    except Exception as error:  # report to the test instead of dying silently
        reply = {"error": repr(error)}
    sys.stdout.write(json.dumps(reply) + "\n")
