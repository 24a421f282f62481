"""`edi inbox`: a receiver's unread messages, as the backbone holds them for it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from edi.core.kinds import MessageKind
from edi.observability.logging import configure_logging
from edi.services.backbone import Backbone, MessagingSettings
from edi.services.reading import read_delivered


def inbox(
    her_id: Annotated[str, typer.Option("--her-id", metavar="HERID", help="The receiver's HER-id.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message, one per line.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="At most this many messages, oldest first.")] = 20,
    mark_read: Annotated[bool, typer.Option("--mark-read", help="Mark the listed messages read.")] = False,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="The data directory `edi up` runs on (default EDI_DATA_DIR, else ./.edi-data).")] = None,
) -> None:
    """List a receiver's unread messages (ordered by GenDate): sender, what the message is, and for an AppRec
    its status and errors."""
    configure_logging(level="WARNING")  # stdout is the command's answer; only trouble goes to stderr
    settings = MessagingSettings() if data_dir is None else MessagingSettings(data_dir=data_dir)
    messages = asyncio.run(_inbox(settings, her_id, limit, mark_read))
    if as_json:
        for message in messages:
            typer.echo(json.dumps(message, ensure_ascii=False))
        return
    console = Console(highlight=False, soft_wrap=True)
    if not messages:
        console.print(f"no unread messages for HER-id {escape(her_id)}")
    for message in messages:
        console.print(f"{message['received_at']}  from {message['sender_her_id']}  {escape(message['what'])}  "
                      f"MsgId {escape(message['msg_id'])}  message {message['message_id']}")
        if message["apprec"] is not None:
            apprec = message["apprec"]
            console.print(f"    AppRec status {apprec['status']} for MsgId {escape(apprec['original_msg_id'])}")
            for error in apprec["errors"]:
                console.print(f"    {error['code']}: {escape(error['description'])}")
    if mark_read and messages:
        console.print(f"marked {len(messages)} message(s) read")


async def _inbox(settings: MessagingSettings, her_id: str, limit: int, mark_read: bool) -> list[dict[str, Any]]:
    async with Backbone.open(settings) as backbone:
        listed = []
        for entry in await backbone.unread([her_id], limit=limit):
            document = await backbone.business_document(entry.message_id, her_id) or b""
            read = read_delivered(document)
            answer = read.answer
            listed.append({
                "message_id": str(entry.message_id), "sender_her_id": entry.sender_her_id, "msg_id": entry.msg_id,
                "gen_date": entry.gen_date.isoformat() if entry.gen_date else None,
                "received_at": entry.received_at.isoformat(timespec="seconds"), "is_apprec": entry.is_apprec,
                "what": MessageKind.of(read.header).name if read.header else "unreadable document",
                "apprec": None if answer is None else {
                    "status": answer.status, "original_msg_id": answer.original_msg_id,
                    "errors": [{"code": e.code, "description": e.description} for e in answer.errors],
                },
            })
            if mark_read:
                await backbone.mark_read(entry.message_id, her_id)
        return listed
