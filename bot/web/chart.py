"""The dashboard's chart of sends and completions per day, as inline SVG made on the server.

No script and no inline style (the Content-Security-Policy allows neither): bars are SVG
rectangles with presentation attributes. The chart has a title and a description for screen
readers, and the same figures are in the table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from storage.dashboard import Day

WIDTH, HEIGHT, PAD, AXIS = 720, 220, 28, 48
MAX_SLOT = 72
FONT = 14
#: About how wide a character of the legend is at FONT (to place the second entry after it).
CHAR_WIDTH = 8
SENT_FILL, DONE_FILL = "#1f5fa8", "#2e7d32"


def day_chart(days: Sequence[Day], *, title: str, sent_label: str, done_label: str) -> str:
    """An SVG bar chart: per day a bar for messages sent and one for questionnaires finished."""
    if not days:
        return ""
    top = max(max(d.sent, d.finished) for d in days) or 1
    slot = min(MAX_SLOT, (WIDTH - AXIS - PAD) / len(days))  # a day or two stay bars, not walls
    bar = max(1.0, slot * 0.4)
    plot = HEIGHT - 2 * PAD
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img" aria-labelledby="chart-title chart-desc" class="chart">',
             f'<title id="chart-title">{escape(title)}</title>',
             f'<desc id="chart-desc">{escape(_describe(days, sent_label, done_label))}</desc>',
             f'<line x1="{AXIS}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
             f'stroke="#444"/>',
             f'<text x="{AXIS - 6}" y="{PAD + 4}" text-anchor="end" '
             f'font-size="{FONT}">{top}</text>',
             f'<text x="{AXIS - 6}" y="{HEIGHT - PAD}" text-anchor="end" '
             f'font-size="{FONT}">0</text>']
    for n, day in enumerate(days):
        x = AXIS + n * slot + slot * 0.1
        for offset, value, fill in ((0.0, day.sent, SENT_FILL), (bar, day.finished, DONE_FILL)):
            h = plot * value / top
            parts.append(f'<rect x="{x + offset:.1f}" y="{HEIGHT - PAD - h:.1f}" '
                         f'width="{bar:.1f}" height="{h:.1f}" fill="{fill}"/>')
        if len(days) <= 16 or n % max(1, len(days) // 8) == 0:
            parts.append(f'<text x="{x + bar:.1f}" y="{HEIGHT - PAD + 16}" text-anchor="middle" '
                         f'font-size="{FONT - 1}">{day.day.strftime("%d.%m")}</text>')
    second = AXIS + 16 + CHAR_WIDTH * len(sent_label) + 24
    parts += [f'<rect x="{AXIS}" y="3" width="13" height="13" fill="{SENT_FILL}"/>',
              f'<text x="{AXIS + 18}" y="15" font-size="{FONT}">{escape(sent_label)}</text>',
              f'<rect x="{second}" y="3" width="13" height="13" fill="{DONE_FILL}"/>',
              f'<text x="{second + 18}" y="15" font-size="{FONT}">{escape(done_label)}</text>',
              "</svg>"]
    return "\n".join(parts)


def _describe(days: Sequence[Day], sent_label: str, done_label: str) -> str:
    total_sent = sum(d.sent for d in days)
    total_done = sum(d.finished for d in days)
    return (f"{days[0].day.isoformat()} – {days[-1].day.isoformat()}: {sent_label} "
            f"{total_sent}, {done_label} {total_done}.")
