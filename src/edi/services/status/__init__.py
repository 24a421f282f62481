"""The status service: per message and receiver, transport state and AppRec status."""
