"""Logs (and, as they come, metrics and traces) configured once for every service and command."""
