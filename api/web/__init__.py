"""The web UI: the engineers' console and the customer portal, server-rendered pages over the scoped JSON API."""
