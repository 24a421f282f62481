"""The capability registry on the bus: the relay publishes the registry's change records to the compacted
edi.registry topic (`relay`), and every process that checks capabilities keeps an in-memory view fed from that
topic (`feed`)."""
