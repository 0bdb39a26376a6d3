"""Identifiers for generated C++, Tcl and file names, made from arbitrary user text.

Model, layer and project names come from users (and from checkpoints found on the internet). They
are never pasted into generated code as they are: `safe_identifier` maps any string to
`[A-Za-z_][A-Za-z0-9_]*`, which needs no quoting in C, C++, Tcl, Vivado object names or file
names, and cannot end a comment, a string or a command. Comments use the same identifiers.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INVALID_RUN = re.compile(r"[^A-Za-z0-9]+")  # underscores too: runs collapse to one '_'
_MAX_BASE = 40  # long enough to stay readable, short enough for tool path limits
_HASH_LEN = 8

# C and C++ keywords (C++ alternative tokens included) plus names the C/C++ headers define as
# macros; reserved spellings with '__' or '_X' are handled by rule in `_is_clean`.
RESERVED = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t char32_t
class compl concept const consteval constexpr constinit const_cast continue co_await co_return
co_yield decltype default delete do double dynamic_cast else enum explicit export extern false
float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr operator
or or_eq private protected public register reinterpret_cast requires restrict return short signed
sizeof static static_assert static_cast struct switch template this thread_local throw true try
typedef typeid typename union unsigned using virtual void volatile wchar_t while xor xor_eq
assert errno main NULL EOF
""".split())


def _is_clean(name: str) -> bool:
    """Usable exactly as written: valid, not reserved, not a spelling C++ reserves for the
    implementation ('__' anywhere, or '_' + capital at the start), not overlong."""
    return (IDENTIFIER.match(name) is not None and name not in RESERVED and "__" not in name
            and not re.match(r"_[A-Z]", name) and len(name) <= _MAX_BASE + 1 + _HASH_LEN)


def _digest(text: str, salt: int) -> str:
    data = text.encode("utf-8", "surrogatepass") + (b"\0%d" % salt if salt else b"")
    return hashlib.sha256(data).hexdigest()[:_HASH_LEN]


def _base(name: str) -> str:
    """The readable part: accents folded to ASCII, every other run of characters to one '_'."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    base = _INVALID_RUN.sub("_", ascii_text).strip("_")[:_MAX_BASE].rstrip("_")
    if not base:
        return "id"
    return f"n{base}" if base[0].isdigit() else base


def safe_identifier(name: str, used: set[str] | None = None) -> str:
    """A C/C++/Tcl-safe identifier for `name`: deterministic, and not already in `used`.

    A clean name is kept as it is. Otherwise (or on a collision) a readable base gets a short
    stable hash suffix of the original text, so different names that sanitize alike stay apart.
    The result is added to `used`, so successive calls with one set give distinct identifiers.
    Idempotent: safe_identifier(safe_identifier(x)) == safe_identifier(x).
    """
    if not isinstance(name, str):
        raise TypeError(f"safe_identifier expects a str, not {type(name).__name__}")
    taken = used if used is not None else set()
    candidate = name if _is_clean(name) else f"{_base(name)}_{_digest(name, 0)}"
    salt = 1
    while candidate in taken:  # a collision: rehash with a counter, still deterministic
        candidate = f"{_base(name)}_{_digest(name, salt)}"
        salt += 1
    if used is not None:
        used.add(candidate)
    return candidate
