"""IoT Central's data-plane REST API from the host: the client (`client`), credentials (`auth`) and
the operations the CLI, provisioning and the factory use (`service`). See docs/central.md."""
