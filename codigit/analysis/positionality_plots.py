"""The positionality page's plots (`positionality_page`): each a PNG, drawn with matplotlib on the file-only backend."""

from __future__ import annotations

from codigit.analysis.page import figure_png, pyplot

TOP_TERMS = 8  # terms per distinctive-language panel
THRESHOLDS = (0.667, 0.8)  # Krippendorff (2018): tentative conclusions / reliable
MARKERS = "osD^vP*X"


def ratings_plot(frame, k: int) -> bytes:
    """Pearson r per reviewer group, one bar each (the plot `codigit positionality` has always drawn)."""
    fig, ax = pyplot().subplots(figsize=(7, 0.4 * max(len(frame), 2) + 1))
    labels = [f"{q} = {g}" for q, g in zip(frame["question"], frame["group"], strict=True)]
    ax.barh(range(len(frame)), frame["r"].fillna(0), color="#557")
    ax.set_yticks(range(len(frame)), labels)
    ax.axvline(0, color="#999", lw=1)
    ax.set_xlim(-1, 1)
    ax.set_xlabel(f"Pearson r: group's mean rating vs accepted (groups of {k} or more)")
    ax.invert_yaxis()
    return figure_png(fig)


def alpha_plot(rows: list[dict]) -> bytes:
    fig, ax = pyplot().subplots(figsize=(7, 0.45 * max(len(rows), 2) + 1.2))
    y = range(len(rows))
    alpha = [r["alpha"] for r in rows]
    xerr = [[r["alpha"] - r["ci_low"] for r in rows], [r["ci_high"] - r["alpha"] for r in rows]]
    ax.errorbar(alpha, y, xerr=xerr, fmt="o", color="#333", capsize=3)
    for x, label, side in zip(THRESHOLDS, ("tentative 0.667 ", " 0.8 reliable"), ("right", "left"), strict=True):
        ax.axvline(x, color="#a33", ls=":", lw=1.2)
        ax.text(x, -0.75, label, fontsize=8, color="#a33", ha=side, va="bottom")
    ax.set_yticks(list(y), [r["code"] for r in rows])
    ax.set_ylim(len(rows) - 0.5, -1)
    ax.set_xlim(min(0, *(r["ci_low"] for r in rows)) - 0.05, 1.02)
    ax.set_xlabel("Krippendorff's α per code, 95% bootstrap CI over stories")
    return figure_png(fig)


def codes_plot(codes) -> bytes:
    """One panel per question: codes down, one marker per group at its share with the CI, grey tick = pooled."""
    questions = list(dict.fromkeys(codes["question"]))
    heights = [codes.loc[codes["question"] == q, "code"].nunique() + 1 for q in questions]
    fig, axes = pyplot().subplots(len(questions), 1, figsize=(6.5, 0.55 * sum(heights) + 1.2 * len(questions)),
                                  squeeze=False, gridspec_kw={"height_ratios": heights})  # fmt: skip
    colours = pyplot().get_cmap("tab10").colors
    for ax, question in zip(axes[:, 0], questions, strict=True):
        rows = codes[codes["question"] == question]
        names, groups = list(dict.fromkeys(rows["code"])), list(dict.fromkeys(rows["group"]))
        pooled = rows.groupby("code")[["count", "stories"]].sum()
        for i, code in enumerate(names):
            share = pooled.loc[code, "count"] / pooled.loc[code, "stories"] if pooled.loc[code, "stories"] else None
            if share is not None:
                ax.plot([share, share], [i - 0.4, i + 0.4], color="#999", lw=3, solid_capstyle="butt")
        step = 0.7 / max(len(groups), 1)
        for j, group in enumerate(groups):
            g = rows[rows["group"] == group].set_index("code").reindex(names)
            y = [i - 0.35 + step * (j + 0.5) for i in range(len(names))]
            err = [(g["share"] - g["ci_low"]).clip(lower=0), (g["ci_high"] - g["share"]).clip(lower=0)]
            ax.errorbar(g["share"], y, xerr=err, fmt=MARKERS[j % len(MARKERS)], color=colours[j % 10], capsize=2,
                        label=group, ms=5)  # fmt: skip
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(question, fontsize=10, loc="left")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    axes[-1, 0].set_xlabel("share of the group's stories given the code (95% cluster-bootstrap CI)")
    return figure_png(fig)


def distinctive_plot(panels: list) -> bytes:
    cols = 2 if len(panels) > 1 else 1
    nrows = -(-len(panels) // cols)
    fig, axes = pyplot().subplots(nrows, cols, figsize=(7.5, 2.6 * nrows), squeeze=False)
    for ax, ((question, group), rows) in zip(axes.flat, panels, strict=False):
        rows = rows.sort_values("z", ascending=False).head(TOP_TERMS)
        ax.barh(range(len(rows)), rows["z"], color="#557")
        ax.set_yticks(range(len(rows)), rows["term"], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="#999", lw=1)
        ax.set_title(f"{question} = {group}", fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    fig.supxlabel("z-score of the log-odds ratio (group vs rest)", fontsize=9)
    return figure_png(fig)


def model_plot(model) -> bytes:
    fig, ax = pyplot().subplots(figsize=(7, 0.4 * max(len(model), 2) + 1))
    labels = [f"{q} = {g}" for q, g in zip(model["question"], model["group"], strict=True)]
    err = [model["tuned_win_rate"] - model["ci_low"], model["ci_high"] - model["tuned_win_rate"]]
    ax.errorbar(model["tuned_win_rate"], range(len(model)), xerr=err, fmt="o", color="#333", capsize=3)
    ax.axvline(0.5, color="#999", lw=1)
    ax.set_yticks(range(len(model)), labels)
    ax.set_xlim(0, 1)
    ax.set_ylim(len(model) - 0.5, -0.5)
    ax.set_xlabel("tuned model's win rate as the group judged it (95% CI over judges)")
    return figure_png(fig)
