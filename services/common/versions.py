"""Versions for what a source serves: the source's own when it sends one, else a
content hash, so that a change in the CRM is visible in every response, job and
call record even when the CRM keeps no version of its own."""

from __future__ import annotations

import hashlib

from google.protobuf.message import Message

# 16 hex digits (64 bits): short enough to read in a log line, and a collision between
# two versions of one persona is out of reach.
_HASH_HEX_DIGITS = 16


def content_version(message: Message) -> str:
    """`sha256:` + the first hex digits of the deterministic serialisation of
    `message` with its own `version` field cleared (a version must not hash itself)."""
    copy = type(message)()
    copy.CopyFrom(message)
    copy.ClearField("version")
    digest = hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()
    return "sha256:" + digest[:_HASH_HEX_DIGITS]
