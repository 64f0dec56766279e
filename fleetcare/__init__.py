"""The `fleetcare` command line and what runs several parts at once: the single-node server, the
demo and the embedded services. It is the one top-level package beyond the four of the design,
because none of them is a natural home for code that starts all of them (docs/decisions.md)."""
