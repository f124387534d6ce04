"""Finds what must never ship in an image: PEM private keys (by content, in any
file) and files named like credentials (.env, ssh keys, *.key, *.p12)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----\s+[A-Za-z0-9+/=]{32,}")
CREDENTIAL_FILE = re.compile(r"^(\.env(\..+)?|id_(rsa|dsa|ecdsa|ed25519)|.+\.(key|p12|pfx)|credentials(\.json)?)$")
# Keys are small; larger files (shared libraries, numpy's data) are not read.
MAX_SCANNED_BYTES = 1 << 20


def find_secrets(root: Path) -> list[str]:
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not os.path.ismount(os.path.join(directory, d))]
        for name in files:
            path = os.path.join(directory, name)
            if CREDENTIAL_FILE.match(name):
                found.append(path)
                continue
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_SCANNED_BYTES:
                with open(path, "rb") as handle:
                    if PRIVATE_KEY.search(handle.read()):
                        found.append(path)
    return sorted(found)
