"""No credential is ever written or printed: the one place that finds them in text and removes them.

Two kinds of credential are found:

* values of environment variables whose names look like credentials (``KEY``, ``TOKEN``, ``SECRET``,
  ``PASSWORD``, ``CREDENTIAL``, ``AUTH``), 8 characters or more (a shorter value is too likely to be
  an ordinary word of the text);
* credentials inside URLs, wherever a URL appears (an ``--api-base``, a log line, an exception
  message): the userinfo (``user:pass@``) and the values of query or fragment parameters whose names
  look like credentials (``key``, ``token``, ``secret``, ``password``, ``api_key``, ``apikey``,
  ``access_token``, ``sig``, ``signature``, ``auth``, ...).

:func:`scrub` removes both from any text before it is written (records, logs, bench.json, reports,
pytest-benchmark's JSON) or printed. The URL with its credentials is still what the run's own process
uses to connect: it travels in the run's spec file on tmpfs, which is deleted with the run.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 8  # literal values shorter than this are not replaced in free text (URL forms always are)
# A variable named like a credential (TIKTOKEN_CACHE_DIR is a folder of tokenizer files, not a token).
SECRET_NAME = re.compile(r"^(?!TIKTOKEN_CACHE_DIR$).*(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.I)
# A query/fragment parameter that carries a credential: key, api_key, apikey, x-api-key, token, access_token,
# secret, client_secret, password, passwd, pwd, pass, auth, authorization, credential, sig, signature, session.
SECRET_PARAM = re.compile(r"key|token|secret|passw|pwd|auth|credential|signature|session|^sig$|^pass$", re.I)
# A URL inside free text: a scheme, "://", then everything up to whitespace, a quote or a bracket, less
# any punctuation that ends the sentence around it.
URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>`\\]*[^\s\"'<>`\\.,;:!?)\]}]")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)@")
_PARAM = re.compile(r"([?&#;])([^=&#?;]+)=([^&#;]*)")


def redact_url(url: str) -> str:
    """`url` with its userinfo and secret-looking query/fragment values replaced by [REDACTED]."""
    url = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", url, count=1)

    def param(m: re.Match) -> str:
        name, value = m.group(2), m.group(3)
        if value.startswith(REDACTED[:-1]) or not SECRET_PARAM.search(unquote(name)):
            return m.group(0)  # already redacted (the URL in text may end just before its "]"), or no secret
        return f"{m.group(1)}{name}={REDACTED}"

    return _PARAM.sub(param, url)


def redact_urls(text: str) -> str:
    """Every URL in `text` passed through :func:`redact_url`."""
    return URL.sub(lambda m: redact_url(m.group(0)), text)


def url_secrets(text: str | None) -> list[str]:
    """The literal credentials inside the URLs of `text`: userinfo, password, secret parameter values (and
    their percent-decoded forms), so that they are removed even where they appear outside a URL."""
    found: list[str] = []
    for url in URL.findall(text or ""):
        m = _USERINFO.match(url)
        if m:
            userinfo = m.group(2)
            user, _, password = userinfo.partition(":")
            found += [userinfo, password] + ([user] if not password else [])  # a bare token as user is a secret
        found += [value for _, name, value in _PARAM.findall(url) if SECRET_PARAM.search(unquote(name))]
    found += [unquote(v) for v in found]
    return [v for v in dict.fromkeys(found) if len(v) >= MIN_SECRET_LEN and v != REDACTED]


def secret_values(env: dict[str, str] | None = None) -> list[str]:
    """Credentials in the environment: values of credential-like variables (long enough to be one), and the
    credentials of any URL held in any variable (API_BASE, a bench's config)."""
    env = os.environ if env is None else env
    named = [v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN]
    in_urls = [s for v in env.values() if "://" in v for s in url_secrets(v)]
    return list(dict.fromkeys(named + in_urls))


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """`text` without any credential: every URL's userinfo and secret parameters, then the literal `secrets`
    (default: :func:`secret_values`), longest first, replaced by [REDACTED]. Scrubbing twice changes nothing."""
    text = redact_urls(text)
    for value in sorted(secrets if secrets is not None else secret_values(), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text
