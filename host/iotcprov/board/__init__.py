"""Talking to a board over its serial port: ports, provision, deploy, flash, info, monitor.

Every operation is a plain function usable from Python; `iotcprov.cli.board` only parses and
prints. A port is an opaque string: a device path, a pty symlink or a pyserial URL.
"""
