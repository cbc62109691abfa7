"""HAProxy appliance driver: rendered configuration plus the runtime API."""
