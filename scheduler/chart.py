"""The digest's chart: one PNG with the week's decisions per day, the score distribution against
the drift baseline, and agreement per segment — what the numbers look like at a glance.

matplotlib's object API with the Agg canvas (no pyplot: no global state, no display); a few
tens of kilobytes, uploaded once per digest with ``files_upload_v2``.
"""

from __future__ import annotations

import io

from core.digest import SCORE_BINS, Digest

__all__ = ["digest_chart"]

_COLORS = {"auto": "#2a9d8f", "review": "#e9c46a", "suppress": "#adb5bd"}


def digest_chart(d: Digest) -> bytes:
    """The PNG bytes of the digest's chart."""
    # matplotlib costs half a second to import: only the digest pays for it, not every command
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    fig = Figure(figsize=(12, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    days, scores, trust = fig.subplots(1, 3)
    labels = [f"{c.day:%a}" for c in d.daily]
    bottom = [0] * len(d.daily)
    for action in ("auto", "review", "suppress"):
        values = [getattr(c, action) for c in d.daily]
        days.bar(labels, values, bottom=bottom, color=_COLORS[action], label=action)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    days.set_ylim(bottom=0)
    days.set_title(f"Decisions per day · {d.week}", fontsize=10)
    days.legend(fontsize=8, frameon=False)

    xs = list(range(SCORE_BINS))
    now_total, base_total = sum(d.drift.current) or 1, sum(d.drift.baseline) or 1
    scores.bar([x - 0.2 for x in xs], [v / base_total for v in d.drift.baseline], width=0.4,
               color="#adb5bd", label="previous 4 weeks")  # fmt: skip
    scores.bar([x + 0.2 for x in xs], [v / now_total for v in d.drift.current], width=0.4,
               color="#264653", label="this week")  # fmt: skip
    scores.set_xticks(xs, [f"{10 * x}" for x in xs], fontsize=8)
    scores.set_ylim(bottom=0)
    scores.yaxis.set_major_formatter(PercentFormatter(1.0))
    psi = "—" if d.drift.psi is None else f"{d.drift.psi:.3f}"
    scores.set_title(f"Score distribution (PSI {psi})", fontsize=10)
    scores.legend(fontsize=8, frameon=False)

    segments = [s for s in d.segments if s.verdicts]
    trust.barh([s.segment for s in segments], [s.rate or 0 for s in segments], color="#2a9d8f")
    trust.set_xlim(0, 1)
    trust.xaxis.set_major_formatter(PercentFormatter(1.0))
    trust.set_title("Agreement with automation by segment", fontsize=10)
    for index, s in enumerate(segments):
        trust.text(min((s.rate or 0) + 0.02, 0.85), index, f"L{s.level} · n={s.verdicts}", va="center", fontsize=8)
    if not segments:
        trust.text(0.5, 0.5, "no verdicts this week", ha="center", va="center", fontsize=9, transform=trust.transAxes)
        trust.set_yticks([])
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
