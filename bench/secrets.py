"""Secrets in what a user typed (model args, a server URL): found, refused, blanked out.

A value is a secret by its name (api_key=, hf_token=, password=) or by its look: the
prefixes providers give their keys (sk-, hf_, ghp_, xox?-, AKIA), a bearer token, a JWT,
credentials or a key in a URL, or a long random-looking string. Only what the user gives
is judged by its look; the digests bench records itself (weights_sha256, task hashes)
live in their own fields and, being hex, never look random here anyway.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.errors import BadInput

MASK = "***"

# The name's last word says what the value is: api_key, hf_token, apikey, db_password are
# secrets; api_key_env names an environment variable, max_tokens a count.
_SECRET_NAME = re.compile(
    r"(key|token|secret|passwd|password|pwd|auth|authorization|credentials?|bearer)$"
)

# What providers' keys and tokens start with, and the other shapes a secret has.
_SECRET_VALUES = {
    "an OpenAI/Anthropic-style key": r"\bsk-[A-Za-z0-9_-]{20,}",
    "a Hugging Face token": r"\bhf_[A-Za-z0-9]{20,}",
    "a GitHub token": r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
    "a Slack token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    "an AWS access key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "a Google API key": r"\bAIza[0-9A-Za-z_-]{30,}",
    "a bearer token": r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
    "a JWT": r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?",
}
_VALUE_RES = {kind: re.compile(pattern) for kind, pattern in _SECRET_VALUES.items()}
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#@\s]+)@")
# A value ends before a separator, and before punctuation that closes a sentence.
_VALUE_END = r"(?:[^\s&;#,\"']*[^\s&;#,\"'.:)])"
_QUERY_PARAM = re.compile(rf"([?&;])([^=&;#\s]+)=({_VALUE_END})")
_NAMED = re.compile(rf"\b([A-Za-z][A-Za-z0-9_.-]*)=([\"']?)({_VALUE_END})")
_RANDOM_RUN = re.compile(r"[A-Za-z0-9+/=]{32,}")
_WORDS = re.compile(r"[a-z]{4,}")


def secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(re.sub(r"[^a-z0-9]", "", name.lower())))


def _named_secret(name: str, value: Any) -> bool:
    """A value under a secret's name; a flag (add_bos_token=True) or nothing is not one."""
    return secret_name(name) and value not in ("", None) and not isinstance(value, bool)


def _looks_random(run: str) -> bool:
    """A long run that reads like a generated key: upper and lower case and digits mixed,
    many bits per character, few word-like stretches. Hex digests (at most 4 bits per
    character, no upper case), paths and model names (words) are not flagged."""
    if not (re.search(r"[a-z]", run) and re.search(r"[A-Z]", run) and re.search(r"\d", run)):
        return False
    counts = Counter(run)
    entropy = -sum(n / len(run) * math.log2(n / len(run)) for n in counts.values())
    in_words = sum(len(word) for word in _WORDS.findall(run))
    return entropy > 4.0 and in_words < len(run) / 3


def _kinds(text: str) -> list[str]:
    """What sorts of secret a string holds."""
    found = [kind for kind, pattern in _VALUE_RES.items() if pattern.search(text)]
    if _USERINFO.search(text):
        found.append("credentials in a URL")
    if any(secret_name(name) for _, name, _ in _QUERY_PARAM.findall(text)):
        found.append("a secret in a URL's query")
    if any(_looks_random(run) for run in _RANDOM_RUN.findall(text)):
        found.append("a long random string")
    return found


def find_secrets(value: Mapping | str) -> list[str]:
    """What in `value` is a secret: for a mapping (model args), the names of the entries
    that hold one (redacted, should a name itself be a key); for a string, the sorts of
    secret it holds ("credentials in a URL", "a Hugging Face token", ...)."""
    if isinstance(value, str):
        return _kinds(value)
    return [
        redact(str(name))
        for name, item in value.items()
        if _named_secret(str(name), item)
        or _kinds(str(name))
        or (isinstance(item, str) and _kinds(item))
    ]


def redact(text: str) -> str:
    """`text` with every secret it holds replaced by ***, the rest as it was:
    http://user:pw@host/v1 -> http://***@host/v1, api_key=sk-... -> api_key=***."""
    text = _USERINFO.sub(lambda m: f"{m[1]}{MASK}@", text)
    for pattern in _VALUE_RES.values():
        text = pattern.sub(MASK, text)
    text = _RANDOM_RUN.sub(lambda m: MASK if _looks_random(m[0]) else m[0], text)
    text = _QUERY_PARAM.sub(
        lambda m: f"{m[1]}{m[2]}={MASK}" if secret_name(m[2]) else m[0],
        text,
    )
    return _NAMED.sub(
        lambda m: f"{m[1]}={m[2]}{MASK}" if _named_secret(m[1], _literal(m[3])) else m[0],
        text,
    )


def _literal(text: str) -> Any:
    """A flag's value as the model-args parser reads it (true/false/none are no secret)."""
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def redact_values(value: Any) -> Any:
    """A copy of settings (dicts, lists, strings) with every secret blanked: values under
    a secret's name, and secrets by their look. What nothing must ever store or show."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            redact(str(name)): MASK if _named_secret(str(name), item) else redact_values(item)
            for name, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_values(item) for item in value]
    return value


def check_settings(model_args: Mapping, base_url: str | None) -> None:
    """Refuse model args or a server URL that carry a secret: they would reach the store,
    the reports and the terminal. The message says where, never what."""
    names = find_secrets(model_args)
    if names:
        raise BadInput(
            f"--model-args {', '.join(names)} looks like a secret; secrets never go on the "
            "command line (they would reach the store): set an environment variable and "
            "name it with api_key_env=NAME"
        )
    kinds = find_secrets(base_url or "")
    if kinds:
        raise BadInput(
            f"--base-url {redact(base_url or '')} holds {' and '.join(kinds)}; secrets never "
            "go on the command line (they would reach the store): put the server's key in "
            "an environment variable and name it with --model-args api_key_env=NAME (sent as "
            "a bearer token)"
        )
