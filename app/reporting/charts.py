"""Server-rendered SVG bar charts: no JavaScript, no charting library, readable at a glance.

Each chart is a <svg role="img"> with a <title> and <desc> summarising it; the page also puts
the same numbers in a table, the text alternative for anyone who cannot see the bars.
"""

from __future__ import annotations

import math
import secrets

from markupsafe import Markup, escape

from app.common.money import exponent, format_minor

WIDTH = 720
HEIGHT = 260
LEFT = 56
RIGHT = 12
TOP = 24
BOTTOM = 44

# Colours with at least 4.5:1 contrast on white, told apart by position and legend too.
SUCCESS = "#1a7f37"
FAILED = "#c62828"
OTHER = "#5b6472"
CANCELED = "#0969da"  # neutral: a decision, not a failure
AXIS = "#1f2328"
GRID = "#d0d7de"


def _uid(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _nice_step(value: float, *, whole: bool) -> float:
    """`value` rounded up to one significant digit (3, 70, 400, 0.5); at least 1 for counts."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    step = round(math.ceil(value / magnitude - 1e-9) * magnitude, 12)
    return max(step, 1) if whole else step


def _axis_top(largest: float, *, whole: bool = True) -> float:
    """Top of the axis: four equal, round steps (whole numbers for counts)."""
    return 4 * _nice_step(largest / 4, whole=whole)


def _frame(title: str, desc: str, body: list[str], legend: list[tuple[str, str]]) -> Markup:
    tid, did = _uid("chart-title"), _uid("chart-desc")
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{tid} {did}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{tid}">{escape(title)}</title>',
        f'<desc id="{did}">{escape(desc)}</desc>',
    ]
    x = LEFT
    for colour, label in legend:
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="14" fill="{AXIS}">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    parts.extend(body)
    parts.append("</svg>")
    return Markup("".join(parts))


def _axis(top_value: float, fmt) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    out = []
    for i in range(5):
        value = top_value * i / 4
        y = TOP + plot_h - plot_h * i / 4
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{AXIS}">'
            f"{escape(fmt(value))}</text>"
        )
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
        f'stroke="{AXIS}"/>'
    )
    return out


def _bars(
    series: list[list[tuple[float, str, str]]], labels: list[str], top_value: float
) -> list[str]:
    """series[i] = stacked segments (value, colour, tooltip) of bar i, bottom first."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(series), 1)
    bar_w = max(slot * 0.62, 1)
    # At most ~31 labels fit under the axis: a long range labels every few days.
    every = math.ceil(len(series) / 31) if series else 1
    out = []
    for i, (segments, label) in enumerate(zip(series, labels, strict=True)):
        x = LEFT + slot * i + (slot - bar_w) / 2
        base = TOP + plot_h
        total = 0.0
        for value, colour, tip in segments:
            if value <= 0:
                continue
            h = plot_h * value / top_value
            base -= h
            total += value
            out.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(tip)}</title></rect>'
            )
        if i % every == 0:
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
                f'fill="{AXIS}">{escape(label)}</text>'
            )
    return out


def _day_label(day) -> str:
    return day.strftime("%d %b")


def volume_chart(days) -> Markup:
    """Payments created per day, stacked: succeeded, failed, canceled, still open."""
    top = _axis_top(max((d.total for d in days), default=0))
    series, labels = [], []
    for d in days:
        other = d.total - d.succeeded - d.failed - d.canceled
        day = _day_label(d.day)
        series.append(
            [
                (d.succeeded, SUCCESS, f"{day}: {d.succeeded} succeeded"),
                (d.failed, FAILED, f"{day}: {d.failed} failed"),
                (d.canceled, CANCELED, f"{day}: {d.canceled} canceled"),
                (other, OTHER, f"{day}: {other} not final"),
            ]
        )
        labels.append(d.day.strftime("%d"))
    total = sum(d.total for d in days)
    succeeded = sum(d.succeeded for d in days)
    failed = sum(d.failed for d in days)
    canceled = sum(d.canceled for d in days)
    desc = (
        f"{total} payments over {len(days)} days from {_day_label(days[0].day)} to "
        f"{_day_label(days[-1].day)}: {succeeded} succeeded, {failed} failed, "
        f"{canceled} canceled, {total - succeeded - failed - canceled} not final. Busiest day: "
        + (
            f"{_day_label(max(days, key=lambda d: d.total).day)} with {max(d.total for d in days)}."
            if total
            else "none."
        )
    )
    body = _axis(top, lambda v: f"{v:g}") + _bars(series, labels, top)
    return _frame(
        "Payments per day",
        desc,
        body,
        [(SUCCESS, "Succeeded"), (FAILED, "Failed"), (CANCELED, "Canceled"), (OTHER, "Not final")],
    )


def amount_chart(days, currency: str) -> Markup:
    """Successful amount per day in one currency, in major units."""
    values = [d.amounts.get(currency, 0) for d in days]
    scale = 10 ** exponent(currency)
    top_minor = _axis_top(max(values, default=0) / scale, whole=False) * scale
    series = [
        [(v, SUCCESS, f"{_day_label(d.day)}: {format_minor(v, currency)} {currency}")]
        for v, d in zip(values, days, strict=True)
    ]
    labels = [d.day.strftime("%d") for d in days]
    total = sum(values)
    desc = (
        f"Successful payments in {currency} per day, {len(days)} days: total "
        f"{format_minor(total, currency)} {currency}."
    )

    def fmt(v: float) -> str:
        # An axis tick in major units: whole ticks bare, others with the currency's decimals.
        minor_units = round(v)
        text = format_minor(minor_units, currency, grouped=True)
        return text.split(".")[0] if minor_units % scale == 0 else text

    body = _axis(top_minor, fmt) + _bars(series, labels, top_minor)
    return _frame(
        f"Amount received per day ({currency})", desc, body, [(SUCCESS, f"Paid, {currency}")]
    )


BAR_ROW = 28  # height of one row of a breakdown chart


def breakdown_chart(title: str, rows: list[tuple[str, int]], *, unit: str, colour: str) -> Markup:
    """Horizontal bars, one per (label, count), largest first as given: what a period's
    payments split into (why they failed, how they were paid)."""
    width, label_w = 480, 170  # drawn beside its table: narrower than the day charts
    height = 8 + BAR_ROW * max(len(rows), 1)
    top = _axis_top(max((v for _, v in rows), default=0))
    plot_w = width - label_w - RIGHT - 64
    total = sum(v for _, v in rows)
    body = []
    for i, (label, value) in enumerate(rows):
        y = 4 + BAR_ROW * i
        w = plot_w * value / top if top else 0
        share = f"{value / total:.0%}" if total else "0%"
        shown = label if len(label) <= 24 else label[:23] + "…"
        body.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" fill="{AXIS}">'
            f"{escape(shown)}</text>"
        )
        body.append(
            f'<rect x="{label_w}" y="{y + 5}" width="{max(w, 1):.1f}" height="{BAR_ROW - 10}" '
            f'fill="{colour}"><title>{escape(f"{label}: {value} {unit} ({share})")}</title></rect>'
        )
        body.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" fill="{AXIS}">{value} · {share}</text>'
        )
    if rows:
        desc = f"{total} {unit}: " + "; ".join(
            f"{label} {value} ({value / total:.0%})" for label, value in rows
        )
    else:
        desc = f"No {unit} in this period."
    tid, did = _uid("chart-title"), _uid("chart-desc")
    return Markup(
        f'<svg class="chart breakdown" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{tid} {did}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="13">'
        f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )
