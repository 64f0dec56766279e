"""Charts for the report as inline SVG: vector, so they print sharp, need no JavaScript and render
the same in a browser and in WeasyPrint's PDF. Each function returns one <svg> element as text."""

from __future__ import annotations

from html import escape

INK = "#1f2937"
GRID = "#d1d5db"
GOOD, FAIR, BAD = "#15803d", "#b45309", "#b91c1c"
SEVERITY_COLOURS = {"P1": "#b91c1c", "P2": "#ea580c", "P3": "#ca8a04", "P4": "#2563eb"}


def health_colour(score: float | None) -> str:
    if score is None:
        return GRID
    return GOOD if score >= 80 else FAIR if score >= 60 else BAD


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def hbars(rows: list[tuple[str, float | None]], *, width: int = 430, lo: float = 0.0, hi: float = 100.0,
          unit: str = "%", bar_h: int = 18, label_w: int = 140, na: str = "n/a") -> str:
    """Horizontal bars with the value printed at each bar's end (availability per site)."""
    gap = 8
    height = len(rows) * (bar_h + gap) + 22
    plot_w = width - label_w - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" font-size="11" font-family="sans-serif">']
    for tick in (lo, (lo + hi) / 2, hi):
        x = label_w + (tick - lo) / (hi - lo) * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 16}" stroke="{GRID}" stroke-width="0.8"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle" fill="{INK}">{_fmt(tick)}{unit}</text>')
    for i, (label, value) in enumerate(rows):
        y = i * (bar_h + gap) + 2
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_h * 0.72:.1f}" text-anchor="end" fill="{INK}">'
                     f'{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{label_w + 4}" y="{y + bar_h * 0.72:.1f}" fill="{INK}">{escape(na)}</text>')
            continue
        w = max(1.0, (min(max(value, lo), hi) - lo) / (hi - lo) * plot_w)
        colour = GOOD if value >= 99.5 else FAIR if value >= 97 else BAD
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h * 0.72:.1f}" fill="{INK}">'
                     f'{_fmt(value)}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline(values: list[float], *, width: int = 140, height: int = 28, lo: float = 0.0,
              hi: float = 100.0) -> str:
    """A device's daily worst health over the period, with the 60 line dashed and the last point marked."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    pad = 3

    def y(v: float) -> float:
        return pad + (1 - (min(max(v, lo), hi) - lo) / (hi - lo)) * (height - 2 * pad)

    parts.append(f'<line x1="0" y1="{y(60):.1f}" x2="{width}" y2="{y(60):.1f}" stroke="{GRID}" '
                 f'stroke-dasharray="3,2" stroke-width="0.8"/>')
    if values:
        step = (width - 2 * pad) / max(1, len(values) - 1)
        pts = [(pad + i * step, y(v)) for i, v in enumerate(values)]
        if len(pts) == 1:
            pts.append((width - pad, pts[0][1]))
        parts.append(f'<polyline fill="none" stroke="{INK}" stroke-width="1.3" points="'
                     + " ".join(f"{x:.1f},{yy:.1f}" for x, yy in pts) + '"/>')
        lx, ly = pts[-1]
        parts.append(f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="2.4" fill="{health_colour(values[-1])}"/>')
    parts.append("</svg>")
    return "".join(parts)


def columns(counts: dict[str, int], *, width: int = 220, height: int = 130) -> str:
    """Cases by severity: one column each, the count on top."""
    n = max(1, len(counts))
    top = max([1, *counts.values()])
    plot_h = height - 36
    col_w = (width - 20) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" font-size="11" font-family="sans-serif">',
             f'<line x1="10" y1="{plot_h + 14}" x2="{width - 10}" y2="{plot_h + 14}" stroke="{INK}" stroke-width="0.8"/>']
    for i, (label, count) in enumerate(counts.items()):
        h = count / top * plot_h
        x = 10 + i * col_w + col_w * 0.2
        parts.append(f'<rect x="{x:.1f}" y="{plot_h + 14 - h:.1f}" width="{col_w * 0.6:.1f}" height="{h:.1f}" '
                     f'fill="{SEVERITY_COLOURS.get(label, INK)}"/>')
        parts.append(f'<text x="{x + col_w * 0.3:.1f}" y="{plot_h + 10 - h:.1f}" text-anchor="middle" '
                     f'fill="{INK}">{count}</text>')
        parts.append(f'<text x="{x + col_w * 0.3:.1f}" y="{height - 6}" text-anchor="middle" fill="{INK}">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
