"""The one function that makes a URL fit to show: credentials never reach a terminal, a log, a
tag or a JSON result (tracking URIs, S3 endpoints, Optuna storage URLs alike)."""

from __future__ import annotations

import re
import urllib.parse

# Query parameters that carry secrets in the URLs users give (presigned S3, database options).
_SECRET_QUERY = re.compile(r"(?i)^(password|passwd|pwd|secret|token|.*signature|.*credential"
                           r"|x-amz-security-token|access_key|secret_key)$")


def mask(url: str | None) -> str:
    """``url`` with its password (and secret query values) replaced by ``***``."""
    if not url:
        return url or ""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user = urllib.parse.unquote(parts.username or "")
            host = netloc.rpartition("@")[2]
            netloc = f"{user}:***@{host}"
        query = parts.query
        if query:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
            query = "&".join(f"{k}={'***' if _SECRET_QUERY.match(k) else v}" for k, v in pairs)
        if (netloc, query) == (parts.netloc, parts.query):
            return url  # nothing secret (and sqlite:////abs paths keep their slashes)
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        # Not parseable: hide anything between "://" and "@".
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
