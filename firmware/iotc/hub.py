# IoT Hub over MQTT, what the device sends: CONNECT user name, telemetry, twin and direct-method
# response topics (docs/protocol.md section 2). Parsing what the hub sends is in incoming.py.
# Pure: no sockets, no clock. sas.quote is imported where needed, so the session need not keep
# sas.py loaded between token renewals. Constants are written where they are used: every
# module-level name would stay interned on the board for good (iotc/__init__.py).

from iotc import VERSION


def username(hub, device_id, model_id=None):
    from iotc.sas import quote

    name = hub + "/" + device_id + "/?api-version=2021-04-12"
    if model_id:
        name += "&model-id=" + quote(model_id)
    # DeviceClientType is quote("iotc-micropython/" + VERSION): VERSION is digits and dots
    return name + "&DeviceClientType=iotc-micropython%2F" + VERSION


def encode_bag(properties):
    """[(name, value), ...] or a dict -> url-encoded 'k=v&k=v'."""
    from iotc.sas import quote

    items = properties.items() if isinstance(properties, dict) else properties
    return "&".join(quote(str(name)) + "=" + quote(str(value)) for name, value in items)


def telemetry_topic(device_id, properties=None, component=None, created=None):
    """devices/{id}/messages/events/ with the $.ct/$.ce JSON markers IoT Central needs, $.sub,
    user properties and, for a message sent later than it was made, `created`
    ('2025-04-21T11:30:16Z') as iothub-creation-time-utc, the time IoT Central then shows for it."""
    topic = "devices/" + device_id + "/messages/events/$.ct=application%2Fjson&$.ce=utf-8"
    if component:
        from iotc.sas import quote

        topic += "&$.sub=" + quote(component)
    if properties:
        topic += "&" + encode_bag(properties)
    if created:
        topic += "&iothub-creation-time-utc=" + created.replace(":", "%3A")
    return topic


def c2d_subscribe_topic(device_id):
    return "devices/" + device_id + "/messages/devicebound/#"


def twin_get_topic(rid):
    return "$iothub/twin/GET/?$rid=%s" % rid


def twin_patch_topic(rid):
    return "$iothub/twin/PATCH/properties/reported/?$rid=%s" % rid


def method_response_topic(status, rid):
    return "$iothub/methods/res/%d/?$rid=%s" % (status, rid)
