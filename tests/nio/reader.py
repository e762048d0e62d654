"""A newcomer's reader, written with matrix-nio (an independent Matrix client
with end-to-end encryption), so the tests do not check our bot with the same
SDK on both sides.

It logs in as a NEW device, uploads its keys, accepts every invitation, and
reads the whole history of every room it is in. Room keys may arrive a little
after the device appears, so it reads again until nothing is undecryptable or
the time is up. It prints one JSON object on standard output:

    {"device_id": ..., "rooms": [...], "events": [
        {"room": ..., "event_id": ..., "sender": ..., "decrypted": true,
         "type": "m.room.message", "msgtype": "m.notice", "rel": "m.thread",
         "relates_to": ..., "body": ...}, ...]}

`decrypted` is true for an event that arrived encrypted and was decrypted,
false for one this device could not decrypt (then only room, event id and
sender are known). Unencrypted events (state, membership) are left out. The
Rust test makes its own counts from this list.

The report also counts the document types among the decrypted messages
("document_types": {"samarbeidsavtale": 2, ...}), named by the title a
document opens with in plain text, else "saksinfo" for a top-level notice
(the case card), "endret saksinfo" for an edit and "melding" for the rest.
With --types it reads again until those types were all seen. Should the
homeserver go away meanwhile (a demo that exits), the last full reading is
reported.

Usage: reader.py HOMESERVER USER PASSWORD [--wait SECONDS] [--min-decrypted N]
                 [--types TYPE,TYPE,...]
The password may also come from the environment variable NIO_PASSWORD
(pass "-" as PASSWORD).
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    LoginResponse,
    MegolmEvent,
    MessageDirection,
    RoomMessagesError,
)


def describe(room_id, event):
    """One line of the report for a decrypted event."""
    source = event.source or {}
    content = source.get("content") or {}
    relates = content.get("m.relates_to") or {}
    return {
        "room": room_id,
        "event_id": event.event_id,
        "sender": event.sender,
        "decrypted": True,
        "type": source.get("type"),
        "msgtype": content.get("msgtype"),
        "rel": relates.get("rel_type"),
        "relates_to": relates.get("event_id"),
        "body": content.get("body"),
    }


TITLES = [
    ("DAGSORDEN", "dagsorden"),
    ("REFERAT", "referat"),
    ("SAMARBEIDSAVTALE", "samarbeidsavtale"),
    ("EVALUERING", "evaluering"),
    ("OVERFØRING", "overføring"),
    ("SAMTALEGUIDE", "samtaleguide"),
    ("MÅNEDLIG FRAVÆRSGJENNOMGANG", "månedsoversikt"),
    ("FRAVÆRSGJENNOMGANG FOR LEDELSEN", "skoleoversikt"),
]


def document_type(entry):
    """The document type of a decrypted message (see the module text)."""
    first = (entry.get("body") or "").split("\n", 1)[0]
    for title, name in TITLES:
        if first.startswith(title):
            return name
    if entry.get("rel") == "m.replace":
        return "endret saksinfo"
    if entry.get("rel") is None and entry.get("msgtype") == "m.notice":
        return "saksinfo"
    return "melding"


def counted(report):
    """Counts of document types among the decrypted messages."""
    types = {}
    for e in report:
        if e["decrypted"] and e.get("type") == "m.room.message":
            name = document_type(e)
            types[name] = types.get(name, 0) + 1
    return types


async def history(client, room_id, token):
    """Every event of the room, newest first, paginating back to its start."""
    events = []
    start = token
    while True:
        response = await client.room_messages(
            room_id, start=start, direction=MessageDirection.back, limit=100
        )
        if isinstance(response, RoomMessagesError):
            raise RuntimeError(f"/messages i {room_id}: {response.message}")
        events.extend(response.chunk)
        if not response.chunk or not response.end or response.end == start:
            return events
        start = response.end


async def reading(client):
    """One reading of every room's history, oldest last."""
    sync = await client.sync(timeout=1000)
    if not hasattr(sync, "next_batch"):
        raise RuntimeError(f"sync feilet: {sync}")
    if client.should_upload_keys:
        await client.keys_upload()
    report = []
    for room_id in sorted(client.rooms):
        for event in await history(client, room_id, sync.next_batch):
            if isinstance(event, MegolmEvent):
                report.append(
                    {
                        "room": room_id,
                        "event_id": event.event_id,
                        "sender": event.sender,
                        "decrypted": False,
                    }
                )
            elif getattr(event, "decrypted", False):
                report.append(describe(room_id, event))
    return report


async def read(args, password):
    store = tempfile.mkdtemp(prefix="nio-reader-")
    client = AsyncClient(
        args.homeserver,
        args.user,
        store_path=store,
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
    )
    try:
        login = await client.login(password, device_name="nio-nykommer")
        if not isinstance(login, LoginResponse):
            raise RuntimeError(f"innlogging feilet: {login}")
        if client.should_upload_keys:
            await client.keys_upload()
        await client.sync(timeout=0, full_state=True)
        for room_id in list(client.invited_rooms):
            joined = await client.join(room_id)
            if isinstance(joined, JoinError):
                raise RuntimeError(f"kunne ikke bli med i {room_id}: {joined.message}")
        deadline = time.monotonic() + args.wait
        wanted = {t for t in (args.types or "").split(",") if t}
        last = None
        while True:
            try:
                report = await reading(client)
            except Exception:
                if last is None:
                    raise
                report = None
            if report is None:
                report = last
                done = True
            else:
                last = report
                undecryptable = sum(1 for e in report if not e["decrypted"])
                decrypted = len(report) - undecryptable
                done = (
                    undecryptable == 0
                    and decrypted >= args.min_decrypted
                    and wanted <= set(counted(report))
                )
            if done or time.monotonic() > deadline:
                return {
                    "device_id": client.device_id,
                    "rooms": sorted(client.rooms),
                    "events": list(reversed(report)),
                    "document_types": counted(report),
                }
            await asyncio.sleep(0.5)
    finally:
        await client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("homeserver")
    parser.add_argument("user")
    parser.add_argument("password")
    parser.add_argument("--wait", type=float, default=60.0)
    parser.add_argument("--min-decrypted", type=int, default=1)
    parser.add_argument("--types", default="")
    args = parser.parse_args()
    password = os.environ.get("NIO_PASSWORD", "") if args.password == "-" else args.password
    result = asyncio.run(read(args, password))
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
