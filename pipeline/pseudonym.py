"""Keyed pseudonyms for patient identifiers, so exports can leave the clinic.

``Pseudonymizer(key).patient("P007")`` is ``"PSN-"`` + the first 16 hex
digits of HMAC-SHA256(key, "P007") (RFC 2104, doi:10.17487/RFC2104): the
same patient gets the same pseudonym in every run made with the same key, and
without the key the original cannot be recovered or checked by guessing.
``text()`` replaces every identifier it has seen inside any string (file
names, paths and messages often contain the patient's ID) where it stands as
a token of its own (not inside a longer run of letters and digits, so patient
``1`` leaves ``2026-01-10`` alone), and never inside a pseudonym.  A value
that already is a pseudonym (``PSN-`` and 16 hex digits) is kept as it is, so
a run pseudonymised with a key and exported with the same key keeps its
pseudonyms.
"""
from __future__ import annotations

import hashlib
import hmac
import re

#: A pseudonym as :meth:`Pseudonymizer.patient` writes it.
PSEUDONYM = re.compile(r"PSN-[0-9a-f]{16}")


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
        if PSEUDONYM.fullmatch(ident):
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
            names = "|".join(_token(n) for n in sorted(self._seen, key=len, reverse=True))
            self._pattern = re.compile(rf"{PSEUDONYM.pattern}|{names}")
        return self._pattern.sub(lambda m: self._seen.get(m.group(0), m.group(0)), value)

    def fingerprint(self) -> str:
        """A keyed tag of this key (16 hex digits) that reveals neither the key nor any identifier: stored
        results measured under one key are not reused under another, or without one."""
        return hmac.new(self._key, b"tricho: stored results", hashlib.sha256).hexdigest()[:16]


def _token(identifier: str) -> str:
    """A pattern matching ``identifier`` where it is not part of a longer run of letters and digits: bounded
    on each side that is itself a letter or digit (``#123`` is found in ``scan#123.jpg``)."""
    before = "(?<![A-Za-z0-9])" if identifier[:1].isalnum() else ""
    after = "(?![A-Za-z0-9])" if identifier[-1:].isalnum() else ""
    return before + re.escape(identifier) + after
