"""The fleetcare site agent: polls the host and installed equipment, publishes over MQTT.

Imports only its own dependencies (paho-mqtt, psutil, pysnmp) so a site install stays light.
"""
