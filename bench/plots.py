"""Plain SVG plots for the W5 and W6 timelines: no plotting library, so `make bench` needs nothing more."""

from __future__ import annotations

from typing import Any

WIDTH, HEIGHT, MARGIN = 720, 300, 50
COLOURS = {"default": "#1f77b4", "original": "#d62728", "no jitter": "#d62728"}


def _frame(title: str, x_label: str, y_label: str, x_max: float, y_max: float, ticks: int = 5) -> list[str]:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif"'
        ' font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14">{title}</text>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle">{x_label}</text>',
        f'<text x="14" y="{HEIGHT / 2}" text-anchor="middle" transform="rotate(-90 14 {HEIGHT / 2})">{y_label}</text>',
        f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - 20}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
        f'<line x1="{MARGIN}" y1="30" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
    ]
    for i in range(ticks + 1):
        x = MARGIN + (WIDTH - 20 - MARGIN) * i / ticks
        y = HEIGHT - MARGIN - (HEIGHT - MARGIN - 30) * i / ticks
        parts.append(
            f'<text x="{x}" y="{HEIGHT - MARGIN + 15}" text-anchor="middle">{x_max * i / ticks:g}</text>'
        )
        parts.append(f'<text x="{MARGIN - 5}" y="{y + 4}" text-anchor="end">{y_max * i / ticks:.3g}</text>')
    return parts


def _x(value: float, x_max: float) -> float:
    return MARGIN + (WIDTH - 20 - MARGIN) * value / x_max


def _y(value: float, y_max: float) -> float:
    return HEIGHT - MARGIN - (HEIGHT - MARGIN - 30) * value / y_max


def _legend(names: list[str]) -> list[str]:
    return [
        f'<text x="{WIDTH - 200}" y="{45 + 16 * i}" fill="{COLOURS.get(name, "black")}">■ {name}</text>'
        for i, name in enumerate(names)
    ]


def w5_svg(w5: dict[str, Any]) -> str:
    """Recovery lag after the server returns, per outage length: median (dot) and min-max (bar)."""
    outages = w5["outages"]
    y_max = max(r["max_s"] for by_policy in outages.values() for r in by_policy.values()) * 1.1
    parts = _frame("W5: recovery lag after the server returns", "outage, s", "lag, s", 35.0, y_max, 7)
    for outage, by_policy in outages.items():
        for offset, (policy, r) in zip((-4, 4), by_policy.items(), strict=False):
            x = _x(float(outage), 35.0) + offset
            colour = COLOURS.get(policy, "black")
            parts.append(
                f'<line x1="{x}" y1="{_y(r["min_s"], y_max)}" x2="{x}" y2="{_y(r["max_s"], y_max)}"'
                f' stroke="{colour}" stroke-width="3"/>'
            )
            parts.append(f'<circle cx="{x}" cy="{_y(r["median_s"], y_max)}" r="4" fill="{colour}"/>')
    parts += _legend(list(next(iter(outages.values()))))
    return "\n".join([*parts, "</svg>"]) + "\n"


def storm_svg(w6: dict[str, Any]) -> str:
    """Reconnect attempts (SYNs) per 10 ms window after the drop, one line per policy."""
    policies = w6["policies"]
    x_max = max((max(r["timeline"], default=0) for r in policies.values()), default=1.0) + 0.2
    series: dict[str, list[int]] = {}
    for policy, r in policies.items():
        buckets = [0] * (int(x_max / 0.01) + 1)
        for t in r["timeline"]:
            if t >= 0:
                buckets[int(t / 0.01)] += 1
        series[policy] = buckets
    y_max = max((max(b, default=0) for b in series.values()), default=1) * 1.1 or 1
    title = f"W6: reconnect attempts per 10 ms, {w6['clients']} clients, server down 2 s"
    parts = _frame(title, "seconds after the drop", "SYNs per 10 ms", round(x_max, 1), y_max)
    for policy, buckets in series.items():
        points = " ".join(
            f"{_x(i * 0.01, x_max):.1f},{_y(count, y_max):.1f}" for i, count in enumerate(buckets)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{COLOURS.get(policy, "black")}" stroke-width="1"/>'
        )
    parts += _legend(list(series))
    return "\n".join([*parts, "</svg>"]) + "\n"
