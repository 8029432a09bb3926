"""Spacing profile pictures: the step between consecutive slices along each stack.

Needs matplotlib (the ``plot`` extra); everything else in the package works without it.
"""

from __future__ import annotations

from pathlib import Path

from .model import Analysis, SeriesAnalysis, Stack
from .outputs import atomic_write, output_path, safe_stem


def plot_stack(series: SeriesAnalysis, stack: Stack, path: Path, *, force: bool = False) -> Path:
    """One PNG: step (mm) after each slice against the slice's position (mm), with the nominal
    spacing, missing slices, duplicates and stitched sections marked."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    from matplotlib import pyplot as plt

    g = stack.known_geometry
    positions = g.positions_mm[:-1]
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    ax.plot(positions, g.steps_mm, "o-", ms=3, lw=1, color="tab:blue", label="step to next slice")
    for k, section in enumerate(g.sections):
        ax.axvspan(section.start_mm, section.end_mm, color=f"C{k % 10}", alpha=0.08,
                   label=f"section {k + 1}")
    if g.spacing.nominal is not None:
        ax.axhline(g.spacing.nominal, color="gray", ls="--", lw=1, label=f"nominal {g.spacing.nominal:g} mm")
    for irregularity in g.irregularities:
        colour = irregularity.kind.plot_colour
        if colour is None or irregularity.after_index is None:
            continue
        for index in irregularity.after_indices:
            if index < len(g.steps_mm):
                ax.plot(positions[index], g.steps_mm[index], "s", ms=8, mfc="none", mec=colour)
        ax.plot([], [], "s", mfc="none", mec=colour, label=irregularity.kind.value.replace("_", " "))
    ax.set_xlabel("slice position along the normal (mm)")
    ax.set_ylabel("step to next slice (mm)")
    title = f"{series.series_description or series.modality} — stack {stack.id} ({stack.role}, {stack.slice_count} slices)"
    ax.set_title(title, fontsize=10)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"), force=force)
    plt.close(fig)
    return path


def plot_analysis(analysis: Analysis, outdir: str | Path, *, force: bool = False) -> list[Path]:
    """A PNG per stack with at least two slices, named after series and stack, into ``outdir``;
    an existing picture raises ``FileExistsError`` unless ``force``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for series in analysis.series:
        for stack in series.stacks:
            if stack.geometry is None or stack.slice_count < 2:
                continue
            number = f"{series.series_number}_" if series.series_number is not None else ""
            stem = safe_stem(f"{number}{series.series_description or series.modality}_stack{stack.id}_spacing")
            written.append(plot_stack(series, stack, output_path(outdir, stem, ".png"), force=force))
    return written
