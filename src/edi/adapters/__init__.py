"""Everything that touches the outside world: SQL stores, the bus, blob stores, HTTP clients."""
