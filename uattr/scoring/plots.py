"""Figures: DET curves of SV systems and the layer weights of every attribute branch (the paper's Figure 2).

Drawn on matplotlib ``Figure`` objects with the Agg canvas (no display, no global pyplot state), saved
atomically. The layer-weight JSON shape, shared with extraction: ``{attr: {"layers": [int...], "weights":
[float...]}}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import norm

from uattr.errors import ConfigError, DataError
from uattr.fileio import PathLike, atomic_write, read_json
from uattr.scoring.metrics import ErrorRates, equal_error_rate

DET_TICKS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999
)
_DET_RESOLUTION = 0.005  # probit units: sweep points closer than this to the previous one are not drawn
_DET_MAX_FLOOR = 0.05  # the axes always span at least 5%–50%, however few trials a class has


def image_format(path: PathLike) -> str:
    """The image format of ``path``'s extension (none: png); one the Agg canvas cannot write is a ConfigError, so
    that a CLI can refuse it before the work of the figure."""
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    supported = FigureCanvasAgg.get_supported_filetypes()
    if suffix not in supported:
        raise ConfigError(f"{path}: cannot write a .{suffix} image; formats: {', '.join(sorted(supported))}")
    return suffix


def save_figure(figure: Figure, path: PathLike) -> None:
    """Render with the Agg canvas and write atomically (format from the file extension)."""
    image = image_format(path)
    FigureCanvasAgg(figure)
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format=image, dpi=150, bbox_inches="tight")


def _literal(text: str) -> str:
    """``text`` as matplotlib should print it: a ``$`` pair would start math mode (and a lone one can fail to
    parse). (Legend labels also go to ``legend`` with their artists: set as an artist's label, one that starts
    with ``_`` would be left out.)"""
    return text.replace("$", r"\$")


def _probit(p: np.ndarray, floor: float) -> np.ndarray:
    return norm.ppf(np.clip(p, floor, 1.0 - floor))


def _thin(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points of a monotone curve that are at least one resolution step apart (ends kept).

    A DET curve of millions of trials has millions of sweep points; a few thousand draw the same line.
    """
    cells = np.stack((np.round(x / _DET_RESOLUTION), np.round(y / _DET_RESOLUTION)))
    changed = np.flatnonzero(np.any(cells[:, 1:] != cells[:, :-1], axis=0)) + 1
    return np.unique(np.concatenate(([0], changed, [len(x) - 1])))


def det_limits(curves: Sequence[tuple[str, ErrorRates]], eers: Sequence[float]) -> tuple[float, float]:
    """The rates (floor, top) both DET axes span: floor < 0.5 ≤ top, so a curve is always drawn.

    The floor is the finest resolvable rate, half a trial of the smaller class (≥ 0.1%), but at most 5%: with a
    class of one or two trials it would otherwise reach 50% and the axes would shrink to a point. The top is
    50%, or 1 − floor when a system is worse than 25% EER.
    """
    finest = min(0.5 / min(rates.n_target, rates.n_nontarget) for _, rates in curves)
    floor = min(_DET_MAX_FLOOR, max(DET_TICKS[0], finest))
    return floor, 0.5 if max(eers) <= 0.25 else 1.0 - floor


def det_ticks(floor: float, top: float) -> list[float]:
    """The DET_TICKS within [floor, top] that are at least 1/16 of the axis apart (in probit units), chosen
    outwards from 50% so that the two halves match: on axes from 0.1% to 99.9% every tick would crowd the ends
    (99.5, 99.8 and 99.9 overlap)."""
    min_gap = (norm.ppf(top) - norm.ppf(floor)) / 16
    shown = [0.5]
    for side in ([t for t in DET_TICKS if floor <= t < 0.5][::-1], [t for t in DET_TICKS if 0.5 < t <= top]):
        last = 0.5
        for tick in side:
            if abs(norm.ppf(tick) - norm.ppf(last)) >= min_gap:
                shown.append(tick)
                last = tick
    return sorted(shown)


def plot_det(curves: Sequence[tuple[str, ErrorRates]], out: PathLike, title: str = "DET") -> None:
    """DET curves of several systems on probit axes (P_fa vs P_miss), each with its EER point marked."""
    if not curves:
        raise DataError("plot_det: no curve to draw")
    eers = [equal_error_rate(rates) for _, rates in curves]
    floor, top = det_limits(curves, eers)
    figure = Figure(figsize=(6, 6))
    axes = figure.add_subplot()
    lines = []
    for (_, rates), eer in zip(curves, eers):
        x, y = _probit(rates.p_fa, floor), _probit(rates.p_miss, floor)
        keep = _thin(x, y)
        (line,) = axes.plot(x[keep], y[keep])
        lines.append(line)
        point = _probit(np.array([eer]), floor)[0]
        axes.plot([point], [point], "o", color=line.get_color())
    ticks = det_ticks(floor, top)
    axes.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    axes.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    limits = norm.ppf([floor, top])
    axes.set_xlim(*limits)
    axes.set_ylim(*limits)
    axes.plot(limits, limits, ":", color="grey", linewidth=0.8)
    axes.set_xlabel("False alarm rate (%)")
    axes.set_ylabel("Miss rate (%)")
    axes.set_title(_literal(title))
    axes.grid(True, linewidth=0.3)
    labels = [f"{_literal(label)} (EER {100 * eer:.2f}%)" for (label, _), eer in zip(curves, eers)]
    axes.legend(lines, labels, loc="upper right", fontsize="small")
    save_figure(figure, out)


def validate_layer_weights(data: Any, source: str) -> dict[str, dict[str, list]]:
    """Check (and normalise to plain lists) ``{attr: {"layers": [int...], "weights": [float...]}}``."""
    if not isinstance(data, Mapping) or not data:
        raise DataError(f"{source}: expected a non-empty mapping attr → {{layers, weights}}")
    checked = {}
    for attr, entry in data.items():
        if not isinstance(entry, Mapping) or set(entry) != {"layers", "weights"}:
            raise DataError(f"{source}: '{attr}' must be a mapping with exactly the keys 'layers' and 'weights'")
        # Checked, not converted: list("12") and int(1.7) would make layers of a string or of another number.
        layers = _numbers(entry["layers"], (int, np.integer))
        weights = _numbers(entry["weights"], (float, int, np.number))
        if layers is None or weights is None:
            raise DataError(f"{source}: '{attr}': layers must be a list of integers and weights a list of numbers")
        if len(layers) != len(weights) or not layers:
            raise DataError(f"{source}: '{attr}' has {len(layers)} layers but {len(weights)} weights")
        if len(set(layers)) < len(layers):
            raise DataError(f"{source}: '{attr}' lists a layer twice: {layers}")
        layers, weights = [int(layer) for layer in layers], [float(weight) for weight in weights]
        if not np.isfinite(weights).all():
            raise DataError(f"{source}: '{attr}' has NaN or inf weights")
        checked[str(attr)] = {"layers": layers, "weights": weights}
    return checked


def _numbers(values: Any, kinds: tuple[type, ...]) -> list | None:
    """``values`` as a list when it is a sequence (list, tuple, array) of ``kinds`` (booleans excluded), else None."""
    if not isinstance(values, (list, tuple, np.ndarray)):
        return None
    items = list(values)
    return items if all(isinstance(x, kinds) and not isinstance(x, (bool, np.bool_)) for x in items) else None


def read_layer_weights(path: PathLike) -> dict[str, dict[str, list]]:
    """Read and check a layer-weight JSON file."""
    return validate_layer_weights(read_json(path), str(path))


def plot_layer_weights(weights: Mapping[str, Mapping[str, Sequence]], out: PathLike, title: str = "") -> None:
    """Every branch's layer weights side by side: x = layer index, one bar group member per attribute."""
    layers = sorted({layer for entry in weights.values() for layer in entry["layers"]})
    position = {layer: i for i, layer in enumerate(layers)}
    width = 0.8 / len(weights)
    figure = Figure(figsize=(max(6.0, 0.35 * len(layers) + 2), 3.5))
    axes = figure.add_subplot()
    bars = []
    for number, entry in enumerate(weights.values()):
        x = np.array([position[layer] for layer in entry["layers"]]) + (number - (len(weights) - 1) / 2) * width
        bars.append(axes.bar(x, entry["weights"], width=width))
    axes.set_xticks(range(len(layers)), [str(layer) for layer in layers])
    axes.set_xlabel("layer")
    axes.set_ylabel("weight")
    if title:
        axes.set_title(_literal(title))
    axes.legend(bars, [_literal(attr) for attr in weights], fontsize="small")
    axes.grid(True, axis="y", linewidth=0.3)
    save_figure(figure, out)
