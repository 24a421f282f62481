"""The validator service (edi.inbound -> edi.accepted | edi.rejected) and the admission rule it shares with the
gateway's `submit`."""
