"""The receipts service: a negative AppRec to the sender of every refused message."""
