"""The operator dashboard: one server-rendered page, tables and inline SVG charts.

Nothing is fetched from a CDN or the network: the page is self-contained HTML. Every figure
that comes from a report carries `data-figure="<name>"` so a browser test can compare what is
shown with the JSON reports.
"""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2433;
background:#f5f6f8}
header{background:#1d2433;color:#fff;padding:14px 28px;display:flex;align-items:baseline;gap:18px}
header h1{font-size:20px;margin:0} header span{opacity:.75}
main{padding:18px 28px;display:grid;gap:18px;
grid-template-columns:repeat(auto-fit,minmax(440px,1fr))}
section{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px #0001}
section.wide{grid-column:1/-1} h2{font-size:15px;margin:0 0 10px}
table{border-collapse:collapse;width:100%} th,td{padding:5px 8px;text-align:left;
border-bottom:1px solid #eceef2;vertical-align:top} th{font-weight:600;color:#5b6475;font-size:12px}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.kpis{display:flex;gap:14px;flex-wrap:wrap} .kpi{background:#f5f6f8;border-radius:6px;
padding:8px 14px} .kpi b{display:block;font-size:22px} .bad{color:#b3261e;font-weight:600}
.ok{color:#1e7b34} .muted{color:#8a93a5} svg text{font-size:11px;fill:#5b6475}
"""


def _num(value: Any, figure: str | None = None, pct: bool = False) -> str:
    if value is None:
        text = "–"
    elif pct:
        text = f"{value:.1%}"
    else:
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
    attr = f' data-figure="{escape(figure)}"' if figure else ""
    return f"<span{attr}>{escape(text)}</span>"


def _ratings(ratings: dict[str, Any]) -> str:
    """Operators' ratings: counts, the worst-rated questions, and refusals rated
    "should_answer" (gaps the documents do cover)."""
    counts = " · ".join(
        f"{escape(k)} {_num(v, 'rating:' + k)}" for k, v in ratings["by_rating"].items()
    )
    worst = "".join(
        f"<tr><td>{escape(q['question'])}</td><td class=n>{q['bad_ratings']}</td></tr>"
        for q in ratings["worst_questions"]
    )
    missed = "".join(
        f"<tr><td>{escape(m['question'])}</td><td>{escape(m['refusal_reason'] or '')}</td>"
        f"<td>{escape(m['correct_doc_id'] or '–')}</td></tr>"
        for m in ratings["should_answer"]
    )
    return (
        f"<section><h2>Ratings ({_num(ratings['total'], 'ratings')})</h2><p>{counts}</p>"
        "<table><tr><th>worst-rated question</th><th>bad ratings</th></tr>"
        f"{worst}</table><h2>Refused, rated should answer</h2><table><tr><th>question</th>"
        f"<th>reason</th><th>right document</th></tr>{missed}</table></section>"
    )


def _bars(
    items: list[tuple[str, float]], width: int = 420, color: str = "#3b6fd8", fmt: str = "{:g}"
) -> str:
    """A horizontal bar chart as inline SVG."""
    if not items:
        return '<p class="muted">no data yet</p>'
    top = max(v for _, v in items) or 1.0
    row = 20
    parts = [f'<svg width="{width}" height="{row * len(items) + 4}" role="img">']
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        w = int((width - 190) * value / top)
        parts.append(
            f'<text x="0" y="{y + 13}">{escape(label[:24])}</text>'
            f'<rect x="150" y="{y + 2}" width="{max(w, 1)}" height="14" rx="2" fill="{color}"/>'
            f'<text x="{155 + w}" y="{y + 13}">{escape(fmt.format(value))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _columns(items: list[tuple[str, float]], height: int = 120, color: str = "#1e7b34") -> str:
    """A column chart (dates along the bottom), values in [0, 1]."""
    if not items:
        return '<p class="muted">no asks in this window</p>'
    col = 34
    parts = [f'<svg width="{col * len(items) + 10}" height="{height + 30}" role="img">']
    for i, (label, value) in enumerate(items):
        h = int(height * value)
        x = i * col + 4
        parts.append(
            f'<rect x="{x}" y="{height - h + 4}" width="{col - 8}" height="{max(h, 1)}" '
            f'rx="2" fill="{color}"/><text x="{x}" y="{height + 18}">{escape(label[5:])}</text>'
            f'<text x="{x}" y="{height - h}">{value:.0%}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


AGE_COLOURS = ("#1e7b34", "#6aa84f", "#c9b037", "#e69138", "#cc4125", "#7f1d1d")


def _age_chart(sources: list[dict[str, Any]], width: int = 420) -> str:
    """One stacked bar per source: how many of its documents fall in each age bucket."""
    rows = [s for s in sources if s["documents"]]
    if not rows:
        return '<p class="muted">nothing ingested</p>'
    labels = list(rows[0]["age_distribution"])
    row, bar = 22, width - 110
    parts = [f'<svg width="{width}" height="{row * len(rows) + 40}" role="img">']
    for i, src in enumerate(rows):
        y, x = i * row + 2, 100.0
        parts.append(f'<text x="0" y="{y + 13}">{escape(src["source"][:14])}</text>')
        for colour, label in zip(AGE_COLOURS, labels):
            n = src["age_distribution"][label]
            w = bar * n / src["documents"]
            if n:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="15" fill="{colour}">'
                    f"<title>{escape(label)}: {n}</title></rect>"
                )
            x += w
    y = row * len(rows) + 14
    for k, (colour, label) in enumerate(zip(AGE_COLOURS, labels)):
        lx = (k % 3) * 140
        ly = y + (k // 3) * 14
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{ly}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_dashboard(freshness: dict[str, Any], hits: dict[str, Any], days: int) -> str:
    overdue = freshness["overdue_sources"]
    rate = _num(hits["answer_rate"], "answer_rate", pct=True)
    kpis = (
        '<div class="kpis">'
        f'<div class="kpi">asks ({days} d)<b>{_num(hits["asks"], "asks")}</b></div>'
        f'<div class="kpi">answered<b>{_num(hits["answered"], "answered")}</b></div>'
        f'<div class="kpi">refused<b>{_num(hits["refused"], "refused")}</b></div>'
        f'<div class="kpi">answer rate<b>{rate}</b></div>'
        f'<div class="kpi">overdue sources<b class="{"bad" if overdue else "ok"}">'
        f"{_num(len(overdue), 'overdue_count')}</b></div>"
        "</div>"
    )
    source_rows = []
    for s in freshness["sources"]:
        name = escape(s["source"])
        failures = "".join(
            f"<div class=bad>{escape(f['path'])}: {escape(f['reason'] or '')}</div>"
            for f in s["last_failures"][:3]
        )
        if s["last_error"]:
            failures += f"<div class=bad>{escape(s['last_error'][:160])}</div>"
        flagged = "; ".join(f"{f['doc_id']}: {f['reason']}" for f in s["flagged"])
        low_ocr = "; ".join(
            f"{f['doc_id']} {f['page']}: {f['confidence']:.2f}" for f in s["ocr_flagged"]
        )
        source_rows.append(
            f"<tr><td><b>{name}</b></td><td>{escape(s['tier'])}</td>"
            f'<td class="n">{_num(s["documents"], f"documents:{name}")}</td>'
            f'<td class="n">{_num(s["chunks"], f"chunks:{name}")}</td>'
            f"<td>{escape((s['newest_source_date'] or '–')[:10])}<br>"
            f"<span class=muted>{escape((s['oldest_source_date'] or '–')[:10])}</span></td>"
            f"<td>{escape((s['last_success_at'] or 'never')[:16])}</td>"
            f"<td>{escape((s['next_run_at'] or '–')[:16])}</td>"
            f'<td class="{"bad" if s["overdue"] else "ok"}">'
            f"{_num('overdue' if s['overdue'] else 'ok', f'overdue:{name}')}</td>"
            f'<td class="n">{_num(s["chunks_expiring_24h"], f"expiring:{name}")}</td>'
            f'<td class="n">{_num(s["chunks_expired_unswept"], f"unswept:{name}")}</td>'
            f'<td class="n {"bad" if s["chunks_flagged"] else ""}" '
            f'title="{escape(flagged)}">{_num(s["chunks_flagged"], f"flagged:{name}")}</td>'
            f'<td class="n {"bad" if s["chunks_ocr_flagged"] else ""}" title="{escape(low_ocr)}">'
            f"{_num(s['chunks_ocr_flagged'], f'ocr_flagged:{name}')}</td>"
            f"<td>{failures or '<span class=muted>none</span>'}</td></tr>"
        )
    tier_rows = "".join(
        f"<tr><td>{escape(t['tier'])}</td>"
        f'<td class="n">{_num(t["documents"], "tier_documents:" + t["tier"])}</td>'
        f'<td class="n">{_num(t["chunks"], "tier_chunks:" + t["tier"])}</td>'
        f'<td class="n">{_num(t["chunks_expiring_24h"])}</td>'
        f'<td class="n">{_num(t["chunks_expired_unswept"])}</td>'
        f'<td class="n">{_num(t["chunks_flagged"])}</td></tr>'
        for t in freshness["tiers"]
    )
    ages = _age_chart(freshness["sources"])
    hit_tiers = "".join(
        f"<tr><td>{escape(t['tier'])}</td><td class=n>{t['asks']}</td><td class=n>{t['hits']}</td>"
        f'<td class="n">{_num(t["hit_rate"], "tier_hit_rate:" + t["tier"], pct=True)}</td></tr>'
        for t in hits["tiers"]
    )
    hit_sources = "".join(
        f"<tr><td>{escape(s['source'])}</td><td class=n>{s['retrieved']}</td>"
        f'<td class=n>{s["cited"]}</td><td class="n">{_num(s["hit_rate"], pct=True)}</td></tr>'
        for s in hits["sources"]
    )
    cited = "".join(
        f"<tr><td>{escape(d['doc_id'])}</td><td>{escape(d['source'])}</td>"
        f'<td class="n">{d["citations"]}</td></tr>'
        for d in hits["most_cited_documents"]
    )
    gaps = "".join(
        f"<tr><td>{escape(g['question'])}</td><td class=n>{g['asked']}</td>"
        f"<td>{escape(g['refusal_reason'] or '')}</td></tr>"
        for g in hits["knowledge_gaps"]
    )
    generators = "".join(
        f"<tr><td>{escape(g['kind'])}</td><td>{escape(g['provider'] or '-')}</td>"
        f"<td>{escape(g['prompt_version'] or '-')}</td><td class=n>{g['asks']}</td>"
        f"<td class=n>{g['fallbacks']}</td><td class=n>{g['tokens_in']}/{g['tokens_out']}</td>"
        f"<td class=n>{g['cost']:.4f}</td></tr>"
        for g in hits["generators"]
    )
    never = hits["never_retrieved"]
    never_list = ", ".join(escape(d["doc_id"]) for d in never["documents"][:20])
    latency = "".join(
        f"<tr><td>{escape(stage)}</td><td class=n>{_num(v['p50'], 'p50:' + stage)}</td>"
        f"<td class=n>{_num(v['p95'], 'p95:' + stage)}</td></tr>"
        for stage, v in hits["latency_ms"].items()
    )
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="60"><title>ragops — operations</title>
<style>{CSS}</style></head><body>
<header><h1>ragops operations</h1><span>generated {escape(freshness["generated_at"])}</span>
<span>window: last {days} days</span></header><main>
<section class="wide">{kpis}</section>
<section class="wide"><h2>Freshness per source</h2><table>
<tr><th>source</th><th>tier</th><th>docs</th><th>chunks</th><th>newest / oldest</th>
<th>last refresh</th><th>next run</th><th>status</th><th>expiring 24 h</th>
<th>expired, unswept</th><th>flagged as injection</th><th>OCR below floor</th>
<th>last failures</th></tr>
{"".join(source_rows)}</table></section>
<section><h2>Tiers</h2><table><tr><th>tier</th><th>docs</th><th>chunks</th>
<th>expiring 24 h</th><th>expired, unswept</th><th>flagged</th></tr>{tier_rows}</table></section>
<section><h2>Document age per source</h2>{ages}</section>
<section><h2>Answer rate per day</h2>
{_columns([(d["date"], d["answer_rate"]) for d in hits["daily"]])}</section>
<section><h2>Refusal reasons</h2>
{_bars([(k, float(v)) for k, v in hits["refusals_by_reason"].items()], color="#b3261e")}</section>
<section><h2>Hit rate per tier</h2><table><tr><th>tier</th><th>asks</th><th>hits</th>
<th>hit rate</th></tr>{hit_tiers}</table></section>
<section><h2>Hit rate per source</h2><table><tr><th>source</th><th>retrieved</th><th>cited</th>
<th>hit rate</th></tr>{hit_sources}</table></section>
<section><h2>Most cited documents</h2><table><tr><th>document</th><th>source</th>
<th>citations</th></tr>{cited}</table></section>
<section><h2>Knowledge gaps (most refused questions)</h2><table><tr><th>question</th>
<th>asked</th><th>reason</th></tr>{gaps}</table></section>
{_ratings(hits["ratings"])}
<section class="wide"><h2>Answer generators (cost {hits["cost_total"]:.4f})</h2><table>
<tr><th>kind</th><th>provider</th><th>prompt version</th><th>asks</th><th>fallbacks</th>
<th>tokens in/out</th><th>cost</th></tr>{generators}</table></section>
<section><h2>Never retrieved</h2><p>{_num(never["count"], "never_retrieved")} documents
were not retrieved by any question in this window.</p>
<p class="muted">{never_list}</p></section>
<section><h2>Latency per stage (ms)</h2><table><tr><th>stage</th><th>p50</th><th>p95</th>
</tr>{latency}</table></section>
</main></body></html>"""
