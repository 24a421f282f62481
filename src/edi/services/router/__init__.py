"""The router service: the capability check for every receiver, one delivery per receiver."""
