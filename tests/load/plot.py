#!/usr/bin/env python3
"""Latency percentiles against message rate, as an SVG, from `deskgate-load chat --json-out`
reports. Needs only the standard library.

    python3 tests/load/plot.py target/load/sweep/*.json -o docs/performance/latency-vs-rate.svg

Reports are grouped by server (gateway or relay, from the file name's first word) and rate
(`params.rate`); each point is the median over the runs of that rate, and the bars show the
smallest and largest run. The y axis is logarithmic: p50 and p99.9 differ by two orders.
"""

import argparse
import json
import math
import os
import statistics
import sys
from collections import defaultdict

PERCENTILES = [("p50", "#1b9e77"), ("p90", "#7570b3"), ("p99", "#d95f02"), ("p999", "#e7298a")]
LABELS = {"p50": "p50", "p90": "p90", "p99": "p99", "p999": "p99.9"}
W, H = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 40, 60


def load(paths):
    """{server: {rate: [latency dict, …]}}"""
    series = defaultdict(lambda: defaultdict(list))
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        if report.get("scenario") != "chat" or not report.get("latency_ms"):
            continue
        server = os.path.basename(path).split("-")[0]
        rate = float(report["params"]["rate"])
        series[server][rate].append(report["latency_ms"])
    return series


def spread(values):
    return statistics.median(values), min(values), max(values)


def render(series, title):
    rates = sorted({r for s in series.values() for r in s})
    if not rates:
        sys.exit("no chat reports with latency in the given files")
    values = [
        l[p] for s in series.values() for runs in s.values() for l in runs for p, _ in PERCENTILES
    ]
    lo = 10 ** math.floor(math.log10(max(min(values), 0.01)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    x0, x1 = min(rates), max(rates)
    if x0 == x1:
        x0, x1 = x0 * 0.5, x1 * 1.5
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(rate):
        return LEFT + (rate - x0) / (x1 - x0) * pw

    def y(ms):
        return TOP + ph - (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{title}</text>',
    ]
    decade = lo
    while decade <= hi * 1.0001:
        for m in (1, 2, 5):
            v = decade * m
            if lo <= v <= hi * 1.0001:
                out.append(
                    f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                    f'stroke="#ddd"/><text x="{LEFT - 6}" y="{y(v) + 4:.1f}" '
                    f'text-anchor="end">{v:g}</text>'
                )
        decade *= 10
    for r in rates:
        out.append(
            f'<line x1="{x(r):.1f}" x2="{x(r):.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#eee"/>'
            f'<text x="{x(r):.1f}" y="{TOP + ph + 18}" text-anchor="middle">{r:g}</text>'
        )
    out.append(
        f'<text x="{LEFT + pw / 2}" y="{H - 18}" text-anchor="middle">'
        "messages per second (all conversations)</text>"
        f'<text transform="translate(18 {TOP + ph / 2}) rotate(-90)" text-anchor="middle">'
        "customer → agent latency, ms (log scale)</text>"
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>'
    )
    legend_y = TOP + 10
    for server, dash in zip(sorted(series), ("", "5,4", "2,3")):
        for p, colour in PERCENTILES:
            points = []
            for r in sorted(series[server]):
                med, mn, mx = spread([l[p] for l in series[server][r]])
                points.append((x(r), y(med)))
                out.append(
                    f'<line x1="{x(r):.1f}" x2="{x(r):.1f}" y1="{y(mn):.1f}" y2="{y(mx):.1f}" '
                    f'stroke="{colour}" stroke-width="2" opacity="0.5"/>'
                )
                out.append(f'<circle cx="{x(r):.1f}" cy="{y(med):.1f}" r="3" fill="{colour}"/>')
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
                f'stroke-dasharray="{dash}"/>'
            )
            out.append(
                f'<line x1="{LEFT + pw + 12}" x2="{LEFT + pw + 36}" y1="{legend_y}" '
                f'y2="{legend_y}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
                f'<text x="{LEFT + pw + 42}" y="{legend_y + 4}">{server} {LABELS[p]}</text>'
            )
            legend_y += 18
        legend_y += 8
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="JSON reports of the chat scenario")
    parser.add_argument("-o", "--output", required=True, help="the SVG file to write")
    parser.add_argument("--title", default="deskgate relay latency against message rate")
    args = parser.parse_args()
    svg = render(load(args.reports), args.title)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(svg)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
