"""The UI's words in English and Simplified Chinese, from one data file (i18n.toml), and the choice
of language for a request: ``?lang=`` (remembered in a cookie), else the cookie, else Accept-Language."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any

from fastapi import Request

from api.reports.render import LANGS  # the languages fleetcare speaks: reports and pages alike
DEFAULT = "en"
COOKIE = "fleetcare_lang"


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


@lru_cache(maxsize=1)
def strings() -> dict[str, dict[str, str]]:
    """Language → dotted key → text. Both languages carry the same keys (tests/test_console_pages.py)."""
    raw = tomllib.loads(resources.files("api.web").joinpath("i18n.toml").read_text("utf-8"))
    return {lang: _flatten(raw[lang]) for lang in LANGS}


def from_accept_language(header: str) -> str:
    """The first language of the header we have (zh, zh-CN, zh-Hans… → zh-CN; en-* → en), by q-value."""
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        choices.append((q, -i, tag.strip().lower()))
    for q, _, tag in sorted(choices, reverse=True):
        if q <= 0:
            continue
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def choose(request: Request) -> tuple[str, bool]:
    """The request's language, and whether it was asked for now (``?lang=``: set the cookie)."""
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked, True
    cookie = request.cookies.get(COOKIE)
    if cookie in LANGS:
        return cookie, False
    return from_accept_language(request.headers.get("accept-language", "")), False


class Translator:
    """`t("key", name=value)` for templates: the text in the request's language, {fields} filled in.
    A missing key shows as the key itself, so a gap is visible rather than an error page."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.table = strings()[lang]

    def __call__(self, key: str, **fields: Any) -> str:
        text = self.table.get(key, key)
        return text.format(**fields) if fields else text
