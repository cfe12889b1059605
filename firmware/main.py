# A thermostat for IoT Central: sends the room temperature, follows the target temperature an
# operator sets, and answers the getMaxMinReport command. Its model is models/thermostat.json:
# import it into an IoT Central device template. The board announces dtmi:iotcprov:Thermostat;1
# unless its identity names another model (iotcprov provision --model-id).
#
# Replace read_temperature() with your sensor. firmware/README.md has the whole API.
from iotc.app import Device

target = 21.0  # targetTemperature in degrees Celsius
room = 18.0  # a simulated room: its heater closes a tenth of the gap to the target per reading
readings = []  # the last 100 readings, for getMaxMinReport


def read_temperature():
    global room
    room += (target - room) / 10
    return round(room, 2)


def telemetry():  # called every options.telemetry_interval seconds
    temperature = read_temperature()
    readings.append(temperature)
    if len(readings) > 100:
        readings.pop(0)
    return {"temperature": temperature}


def set_target(value):  # an operator changed targetTemperature
    global target
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 5 <= value <= 35:
        return target, 400, "must be 5-35"  # refused: the current target stays
    target = value  # returning None acknowledges the value as it was sent


def max_min_report(request):  # the getMaxMinReport command
    if not readings:
        return 409, {"error": "no readings yet"}
    average = sum(readings) / len(readings)
    return {"maxTemp": max(readings), "minTemp": min(readings), "avgTemp": round(average, 2)}


def message(body, properties):  # a cloud-to-device message
    print("message:", body, properties)


device = Device(telemetry=telemetry, model_id="dtmi:iotcprov:Thermostat;1")
device.on_property("targetTemperature", set_target)
device.on_command("getMaxMinReport", max_min_report)
device.on_message(message)
device.run()  # returns only when the configuration is broken
