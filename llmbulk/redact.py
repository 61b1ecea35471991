"""Credentials in URLs and command lines: hidden before anything is logged or printed.

Hook targets and database URLs carry credentials (`https://user:pw@host/hook?token=…`,
`curl -u user:pw …`): every URL or command line that is logged or printed goes through `redact_url`
/ `redact_command` first, and error text that may quote a secret through `scrub`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

REDACTED = "***"
# A query (or fragment) parameter, header or option whose name contains one of these holds a secret.
SECRET_NAME = re.compile(r"token|key|pass|pwd|secret|sig|auth|credential|session|cookie", re.IGNORECASE)
URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_VALUE = r"(?:'[^']*'|\"[^\"]*\"|[^\s'\"]+)"
_SECRET_WORD = rf"[\w.-]*(?:{SECRET_NAME.pattern})[\w.-]*"
_COMMAND_SECRETS = (
    # NAME=value: an environment assignment or --option=value
    re.compile(rf"(?i)(?<![\w-])(-{{0,2}}{_SECRET_WORD}=){_VALUE}"),
    # --option value / -u user:pw (curl, wget, httpie)
    re.compile(rf"(?i)(?<![\w-])((?:--?{_SECRET_WORD}|-u|--user|--proxy-user)\s+){_VALUE}"),
    # a header such as 'Authorization: Bearer …' or 'X-Api-Key: …'
    re.compile(rf"(?i)({_SECRET_WORD}:\s*)[^'\"\n]+"),
)


def _looks_like_token(segment: str) -> bool:
    """A path segment that is a credential (Slack and Discord put the webhook's secret in the path)."""
    return len(segment) >= 16 and any(c.isalpha() for c in segment) and any(c.isdigit() for c in segment)


def _redact_params(text: str, found: list[str]) -> str:
    pairs = []
    for pair in text.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and SECRET_NAME.search(unquote(name)):
            found.append(value)
            found.append(unquote(value))
            value = REDACTED
        pairs.append(f"{name}{eq}{value}")
    return "&".join(pairs)


def _redacted_parts(url: str, keep_user: bool, keep_path: bool = False) -> tuple[str, list[str]]:
    """The URL with its secrets replaced, and the secrets themselves (raw and decoded)."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: show no more than the scheme
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return (f"{scheme}://{REDACTED}" if scheme else REDACTED), [url]
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        if password:
            found += [password, unquote(password)]
        if keep_user:
            netloc = f"{user}:{REDACTED}@{host}" if colon else f"{user}@{host}"
        else:
            found += [user, unquote(user)] if user else []
            netloc = f"{REDACTED}@{host}"
    segments = parts.path.split("/")
    for i, segment in enumerate(segments):
        if not keep_path and _looks_like_token(unquote(segment)):
            found += [segment, unquote(segment)]
            segments[i] = REDACTED
    query = _redact_params(parts.query, found)
    fragment = _redact_params(parts.fragment, found) if "=" in parts.fragment else parts.fragment
    secrets = [f for f in found if f and f != REDACTED]
    if not secrets:
        return url, []
    # Rebuilt by hand: urlunsplit would turn sqlite:////abs/path into sqlite://abs/path.
    before_fragment = url.split("#", 1)[0]
    rebuilt = f"{parts.scheme}:" if parts.scheme else ""
    rebuilt += f"//{netloc}" if url[len(rebuilt) :].startswith("//") else ""
    rebuilt += "/".join(segments)
    rebuilt += f"?{query}" if "?" in before_fragment else ""
    rebuilt += f"#{fragment}" if "#" in url else ""
    return rebuilt, secrets


def redact_url(url: str, *, keep_user: bool = False, keep_path: bool = False) -> str:
    """`url` fit to log: no password, no secret-looking query values or path tokens.

    The user name is hidden too unless `keep_user` (a database URL's user is not a secret; a
    webhook's often is: `https://TOKEN@host/…`); `keep_path` keeps every path segment (a
    database URL's path is a file or database name, not a credential).
    """
    return _redacted_parts(url, keep_user, keep_path)[0]


def url_secrets(url: str) -> list[str]:
    """The secrets `redact_url` hides, to scrub them from error text that may quote them."""
    return _redacted_parts(url, False)[1]


def redact_command(command: str) -> str:
    """A shell command line fit to log: its URLs redacted, and secret options, assignments and headers."""
    text = URL_RE.sub(lambda m: redact_url(m.group(0)), command)
    for pattern in _COMMAND_SECRETS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced (longest first)."""
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
