"""The report's plots as PNG bytes: matplotlib's Agg canvas, no pyplot state, no metadata.

Same input -> same bytes: figures are built with `matplotlib.figure.Figure` (no global state,
nothing shown), the PNG `Software` tag is dropped and no timestamps are written.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
WIDE = (7.5, 4.2)  # inches: a plot that reads at page width
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
ALERT_COLOR = "#d62728"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # Dropping the Software tag leaves a PNG that depends only on the pixels.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _new(size: tuple[float, float] = WIDE) -> tuple[Figure, object]:
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    return fig, ax


def plot_tier_mix(
    mixes: Mapping[str, Mapping[int, float]], tiers: Sequence[int], title: str
) -> bytes:
    """Stacked horizontal bars: the share of requests each policy sends to each tier."""
    fig, ax = _new((7.5, 0.9 + 0.42 * max(1, len(mixes))))
    names = list(mixes)
    left = np.zeros(len(names))
    for i, tier in enumerate(tiers):
        share = np.array([mixes[n].get(tier, 0.0) for n in names])
        ax.barh(names, share, left=left, color=PALETTE[i % len(PALETTE)], label=f"tier {tier}")
        left += share
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of requests")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _png(fig)


def plot_reliability(
    predicted: Sequence[float], observed: Sequence[float], title: str, n_bins: int = 10
) -> bytes:
    """Reliability diagram: mean observed success per bin of predicted probability."""
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(observed, dtype=float)
    fig, ax = _new((5.5, 5.0))
    ax.plot([0, 1], [0, 1], color="#7f7f7f", linestyle="--", label="perfect calibration")
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    xs, ys, ns = [], [], []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            xs.append(p[mask].mean())
            ys.append(y[mask].mean())
            ns.append(int(mask.sum()))
    ax.plot(xs, ys, marker="o", color=PALETTE[0], label="observed")
    for x, yy, n in zip(xs, ys, ns, strict=True):
        ax.annotate(str(n), (x, yy), fontsize=6, textcoords="offset points", xytext=(3, -9))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(success)")
    ax.set_ylabel("observed success rate")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def plot_bars(
    labels: Sequence[str],
    values: Sequence[float | None],
    title: str,
    ylabel: str,
    alert: float | None = None,
) -> bytes:
    """One bar per label, with an optional alert line; a missing value is marked n/a, not 0."""
    fig, ax = _new()
    v = np.array([np.nan if value is None else value for value in values], dtype=float)
    ax.bar(np.arange(len(labels)), np.nan_to_num(v), color=PALETTE[0])
    for i in np.flatnonzero(np.isnan(v)):
        ax.annotate("n/a", (i, 0), ha="center", va="bottom", fontsize=7, color="#555")
    _alert(ax, alert)
    _categorical_x(ax, labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if alert is not None:
        ax.legend(fontsize=7)
    return _png(fig)


def _alert(ax: object, alert: float | None) -> None:
    if alert is not None:
        ax.axhline(
            alert,
            color=ALERT_COLOR,
            linestyle="--",
            linewidth=1.2,
            label=f"alert line ({alert:.4g})",
        )


def _categorical_x(ax: object, labels: Sequence[str]) -> None:
    ax.set_xticks(np.arange(len(labels)))
    # Long series (many days) keep every k-th label so the axis stays readable.
    step = max(1, len(labels) // 12)
    ax.set_xticklabels(
        [lab if i % step == 0 else "" for i, lab in enumerate(labels)],
        rotation=30,
        ha="right",
        fontsize=7,
    )
