"""SNMP polling: profiles (data), a pysnmp session seam, the poller, traps and discovery."""
