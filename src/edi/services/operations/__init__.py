"""Operator tools: find a message and show its history across the services, list, inspect, re-drive or park
dead letters, resend a receipt, see each receiver's backlog; every action audited. Used by `edi ops` and the
gateway's /ops API."""
