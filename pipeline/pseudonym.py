"""Keyed pseudonyms for patient identifiers, so exports can leave the clinic.

``Pseudonymizer(key).patient("P007")`` is ``"PSN-"`` + the first 16 hex
digits of HMAC-SHA256(key, "P007") (RFC 2104, doi:10.17487/RFC2104): the
same patient gets the same pseudonym in every run made with the same key, and
without the key the original cannot be recovered or checked by guessing.
``text()`` replaces every identifier it has seen inside any string (file
names, paths and messages often contain the patient's ID).
"""
from __future__ import annotations

import hashlib
import hmac
import re


class Pseudonymizer:
    """Map patient identifiers to keyed pseudonyms (see the module doc).

    Parameters
    ----------
    key : str
        Secret key; keep it in the clinic. Must not be empty.
    """

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the pseudonymisation key is empty; give a secret of your own (e.g. 32 random characters)")
        self._key = key.encode()
        self._seen: dict[str, str] = {}
        self._pattern: re.Pattern | None = None

    def patient(self, identifier: str) -> str:
        """The pseudonym of one identifier (empty stays empty)."""
        ident = str(identifier).strip()
        if not ident:
            return ident
        if ident.startswith("PSN-") and ident in self._seen.values():
            return ident
        if ident not in self._seen:
            digest = hmac.new(self._key, ident.encode(), hashlib.sha256).hexdigest()[:16]
            self._seen[ident] = f"PSN-{digest}"
            self._pattern = None
        return self._seen[ident]

    def text(self, value):
        """``value`` with every identifier seen so far replaced by its pseudonym (non-strings unchanged)."""
        if not isinstance(value, str) or not self._seen:
            return value
        if self._pattern is None:
            names = sorted(self._seen, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(n) for n in names))
        return self._pattern.sub(lambda m: self._seen[m.group(0)], value)
