"""Serves people: the REST API, the engineers' console and (later) the customer portal."""
