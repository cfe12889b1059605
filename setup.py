"""Package list only: firmware/ and boards/ ship inside the host package as package data."""

from setuptools import find_packages, setup

setup(
    packages=find_packages("host")
    + ["iotcprov.firmware", "iotcprov.firmware.iotc", "iotcprov.firmware.models", "iotcprov.boards"],
)
