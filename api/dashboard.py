"""The operator pages, server-rendered from `templates/`: the dashboard (tables and inline SVG
charts drawn from the typed freshness and hits reports), the ask page and its login.

Nothing is fetched from a CDN or the network: every page is self-contained HTML.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from rag.answering.confidence import sigmoid
from rag.ops.report_models import FreshnessReport, HitsReport

# Youngest to oldest, one per `rag.ops.reports.AGE_BUCKETS`.
AGE_COLOURS = ("#1e7b34", "#6aa84f", "#c9b037", "#e69138", "#cc4125", "#7f1d1d")


def figure_text(value: object, pct: bool = False) -> str:
    """A report figure as the page shows it: a dash for none, a share as a percentage."""
    if value is None:
        return "–"
    if pct and isinstance(value, float):
        return f"{value:.1%}"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


@cache
def _environment() -> Environment:
    # StrictUndefined: a field the template names that the report lacks fails the render (and
    # the tests) instead of showing an empty cell.
    env = Environment(
        loader=PackageLoader("api", "templates"), autoescape=True, undefined=StrictUndefined
    )
    env.filters["figure_text"] = figure_text
    env.filters["zip"] = zip
    env.filters["sigmoid"] = sigmoid
    return env


def render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


def render_dashboard(freshness: FreshnessReport, hits: HitsReport, days: int) -> str:
    return render(
        "dashboard.html", freshness=freshness, hits=hits, days=days, age_colours=AGE_COLOURS
    )
