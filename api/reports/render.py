"""Report data → HTML (Jinja2) → PDF (WeasyPrint), in English or Simplified Chinese.

Every word comes from i18n.toml for the chosen language; names, numbers and dates come from the
data. The HTML is self-contained (inline CSS and SVG), so the stored copy renders the same years on.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from api.reports import charts

LANGS = ("en", "zh-CN")


class PdfUnavailable(RuntimeError):
    """WeasyPrint or its system libraries (Pango) are missing: HTML still works."""


@lru_cache(maxsize=1)
def texts() -> dict[str, dict[str, Any]]:
    return tomllib.loads(resources.files("api.reports").joinpath("i18n.toml").read_text("utf-8"))


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=PackageLoader("api.reports", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
    return lang


def advice(rec: dict[str, Any], lang: str) -> str:
    t = texts()[lang]["advice"]
    params = {k: v for k, v in rec.items() if k != "key"}
    return t[rec["key"]].format_map(params)


def problem_label(problem: str, lang: str) -> str:
    """A case's problem in the report's words: the watched metric (with its labels) or a named problem."""
    labels = texts()[lang]["problems"]
    base, _, rest = problem.partition("{")
    base = base.split(":")[0]
    label = labels.get(base, labels["other"])
    inner = rest.rstrip("}")
    return f"{label} ({', '.join(v.split('=', 1)[-1] for v in inner.split(','))})" if inner else label


def month_name(data: dict[str, Any], lang: str) -> str:
    t = texts()[lang]
    start = datetime.fromisoformat(data["start"])
    return t["month"].format(month_name=t["months"][start.month - 1], month_num=start.month, year=start.year)


def html(data: dict[str, Any], lang: str = "en") -> str:
    t = texts()[check_lang(lang)]
    month = month_name(data, lang)
    s = data["summary"]

    def pct(v: float | None) -> str:
        return t["na"] if v is None else f"{v:.1f}%".replace(".0%", "%") if v == int(v) else f"{v:.2f}%"

    def met(v: bool | None) -> str:
        return t["pending"] if v is None else t["met"] if v else t["missed"]

    site_chart = Markup(charts.hbars([(f"{x['site']}", x["availability"]) for x in data["sites"]],
                                     lo=min([90.0, *[x["availability"] for x in data["sites"] if x["availability"]
                                                     is not None]]), na=t["na"]))
    sev_chart = Markup(charts.columns(s["by_severity"]))
    cases = [dict(k, label=k["title"] if lang == "en" else problem_label(k["problem"], lang)) for k in data["cases"]]
    devices = [dict(d, spark=Markup(charts.sparkline(d["health_daily"])),
                    colour=charts.health_colour(d["health"]),
                    delta=None if d["health"] is None or d["health_start"] is None else round(d["health"] - d["health_start"], 1))
               for d in data["devices"]]
    return _env().get_template("report.html.j2").render(
        t=t, lang=lang, d=data, s=s, month=month, pct=pct, met=met, devices=devices, cases=cases, site_chart=site_chart,
        sev_chart=sev_chart, recommendations=[advice(r, lang) for r in data["recommendations"]])


def pdf(html_text: str) -> bytes:
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: Pango/cairo libraries missing
        raise PdfUnavailable(f"PDF needs WeasyPrint and Pango ({exc}); install the 'server' extra and "
                             "Debian's libpango-1.0-0, or ask for the HTML") from None
    return HTML(string=html_text).write_pdf()
