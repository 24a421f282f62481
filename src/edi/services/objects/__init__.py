"""The object service: large attachments in the blob store, DEFT-style.

Senders upload a file (`api.py`) and put its URL in MsgHead's RefDoc/FileReference; receivers fetch it and
confirm, and the last confirmation deletes it; the janitor (`janitor.py`) deletes what outlives its retention.
The router moves large inline attachments here and puts them back inline for receivers that cannot read
FileReference (`offload.py`); ingress checks FileReferences that point here (`offload.check_file_references`).
"""
