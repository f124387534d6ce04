"""A persona's version for call records: the CRM gives none, so it is the persona's
content hash. Two calls with the same version heard exactly the same persona."""

from __future__ import annotations

import hashlib

from friday.persona.v1.persona_pb2 import Persona


def persona_version(persona: Persona) -> str:
    """"sha256:" + the first 16 hex digits of the persona's deterministic serialisation."""
    digest = hashlib.sha256(persona.SerializeToString(deterministic=True)).hexdigest()
    return f"sha256:{digest[:16]}"
