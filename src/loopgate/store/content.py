"""Content-addressed storage of long strings inside JSON documents.

``intern`` walks a document and replaces every string of at least ``MIN_LENGTH`` characters with a
reference ``{"$blob": <hash>}``, collecting ``hash -> string``; ``expand`` reverses it. The blobs table is
insert-if-absent, so a 2 KB system prompt shared by 100,000 logs is stored once.
"""

import hashlib
from typing import Any

MIN_LENGTH = 64
REF_KEY = "$blob"


def content_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def intern(document: Any, blobs: dict[str, str]) -> Any:
    if isinstance(document, str):
        if len(document) < MIN_LENGTH:
            return document
        digest = content_hash(document)
        blobs[digest] = document
        return {REF_KEY: digest}
    if isinstance(document, dict):
        return {key: intern(value, blobs) for key, value in document.items()}
    if isinstance(document, list):
        return [intern(value, blobs) for value in document]
    return document


def references(document: Any, found: set[str]) -> set[str]:
    if isinstance(document, dict):
        if len(document) == 1 and REF_KEY in document:
            found.add(document[REF_KEY])
        else:
            for value in document.values():
                references(value, found)
    elif isinstance(document, list):
        for value in document:
            references(value, found)
    return found


def expand(document: Any, blobs: dict[str, str]) -> Any:
    if isinstance(document, dict):
        if len(document) == 1 and REF_KEY in document:
            return blobs[document[REF_KEY]]
        return {key: expand(value, blobs) for key, value in document.items()}
    if isinstance(document, list):
        return [expand(value, blobs) for value in document]
    return document
