# The example application: connect with the identity the host provisioned and send the board's
# readings (uptime, free heap, RSSI, temperature) every options.telemetry_interval seconds.
# A configuration problem prints one `iotc: config error ...` line and returns to the REPL.
import iotc.app

iotc.app.main()
