"""The dashboard's charts as PNG images, drawn by matplotlib on the server.

Server-side pictures keep the dashboard page free of a charting script (its CSP allows only this
app's files, and the service runs offline). Each chart is a standalone ``Figure`` on the Agg
canvas, so nothing touches pyplot's global state and drawing is safe in a server thread. Label
names are drawn with :data:`learner.PLAIN_TEXT`: as typed, never parsed as math text or TeX.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from learner import PLAIN_TEXT, figure_png
from service.schemas import ActivityHour, LabelCount, ModelVersionPublic

# Marker colour of a version by its status: served (deployed, retired) or not (rejected, trained).
# Deployed and retired are Okabe-Ito blue and orange, told apart with any colour vision.
STATUS_COLOURS = {"deployed": "#0072b2", "retired": "#e69f00", "rejected": "#b91c1c"}
OTHER_COLOUR = "#78716c"


def model_history_png(versions: Sequence[ModelVersionPublic]) -> bytes:
    """Cross-validated accuracy per version (markers coloured by deploy decision) over bars of
    the sample count each version was trained on."""
    figure, axes = _figure(7.5, 3.2)
    ordered = sorted(versions, key=lambda v: v.version)
    if not ordered:
        return _empty(figure, axes, "no model trained yet")
    numbers = [v.version for v in ordered]
    samples = axes.twinx()
    samples.bar(numbers, [v.sample_count for v in ordered], color="#d6d3d1", width=0.6, zorder=0)
    samples.set_ylabel("samples")
    axes.set_zorder(samples.get_zorder() + 1)
    axes.patch.set_visible(False)  # the bars behind stay visible
    # version 0 (zero-shot, fitted on no sample) may have no cross-validated accuracy
    accuracy = [v.metrics.get("accuracy") for v in ordered]
    measured = [(n, a) for n, a in zip(numbers, accuracy, strict=True) if a is not None]
    if measured:
        axes.plot(*zip(*measured, strict=True), color="#1c1917", linewidth=1, zorder=2)
    for status, colour in (*STATUS_COLOURS.items(), ("other", OTHER_COLOUR)):
        chosen = [
            (v.version, a)
            for v, a in zip(ordered, accuracy, strict=True)
            if (v.status == status or (status == "other" and v.status not in STATUS_COLOURS))
            and a is not None
        ]
        if chosen:
            marker = "x" if status == "rejected" else "o"
            xs, ys = zip(*chosen, strict=True)
            axes.scatter(xs, ys, color=colour, marker=marker, s=48, zorder=3, label=status)
    lowest = min((a for _, a in measured), default=1.0)
    axes.set_ylim(max(0.0, round(lowest - 0.15, 1)), 1.02)
    axes.set_xlabel("version")
    axes.set_ylabel("accuracy (cross-validated)")
    axes.set_xticks(numbers)
    axes.legend(loc="lower right", fontsize="small")
    return figure_png(figure)


def activity_png(hours: Sequence[ActivityHour]) -> bytes:
    """Items captured and resolved per hour (bars), the queue depth (line) and, where this
    process counted the invokes, the capture rate (of all invokes) and the novel share (of those
    scored for novelty) (dashed, right axis)."""
    figure, axes = _figure(7.5, 3.2)
    if not hours:
        return _empty(figure, axes, "no activity")
    positions = range(len(hours))
    axes.bar(
        [p - 0.2 for p in positions], [h.captured for h in hours], 0.4, label="captured", zorder=2
    )
    axes.bar(
        [p + 0.2 for p in positions], [h.resolved for h in hours], 0.4, label="reviewed", zorder=2
    )
    depth = [h.queue_depth for h in hours]
    axes.step(positions, depth, where="mid", color="#1c1917", label="queue depth", zorder=3)
    rates = [(p, h.capture_rate) for p, h in zip(positions, hours, strict=True)]
    shares = [(p, h.novel / h.scored) for p, h in zip(positions, hours, strict=True) if h.scored]
    measured = [(p, r) for p, r in rates if r is not None]
    if measured or shares:
        share = axes.twinx()
        for points, colour, label in (
            (measured, "#7c3aed", "capture rate"),
            (shares, "#db2777", "novel share"),
        ):
            if points:
                share.plot(
                    *zip(*points, strict=True), "o--", color=colour, markersize=3, label=label
                )
        share.set_ylim(0, 1)
        share.set_ylabel("share of invokes")
        share.legend(loc="upper right", fontsize="small")
    step = max(1, len(hours) // 8)
    axes.set_xticks(
        list(positions)[::step], [h.hour.strftime("%d %H:00") for h in hours][::step], fontsize=8
    )
    axes.set_xlabel("hour (UTC)")
    axes.set_ylabel("items")
    axes.legend(loc="upper left", fontsize="small")
    return figure_png(figure)


def label_counts_png(counts: Sequence[LabelCount]) -> bytes:
    """Labelled samples per label, as horizontal bars (most first, top down).

    Bars sit at numeric positions with the names as plain tick text: as matplotlib categories,
    two long names shortened alike would share one bar.
    """
    figure, axes = _figure(7.5, min(1.2 + 0.28 * len(counts), 12.0))
    if not counts:
        return _empty(figure, axes, "no labels yet")
    names = [c.label_name if len(c.label_name) <= 24 else c.label_name[:23] + "…" for c in counts]
    positions = range(len(counts))
    axes.barh(positions, [c.count for c in counts], color="#57534e")
    axes.set_yticks(positions, names, **PLAIN_TEXT)
    axes.invert_yaxis()  # the first (most used) label on top
    axes.set_xlabel("labelled samples")
    return figure_png(figure)


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.grid(axis="y", color="#e7e5e4", zorder=0)
    return figure, axes


def _empty(figure: Figure, axes: Axes, text: str) -> bytes:
    axes.set_axis_off()
    axes.text(0.5, 0.5, text, ha="center", va="center", color=OTHER_COLOUR)
    return figure_png(figure)
