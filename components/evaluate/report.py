"""The human side of the comparison: plots and ``reports/comparison.md``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.contracts import CHAMPION_PENDING
from components.evaluate import costs

LEARNING = "learning_curves.png"
CONFUSION = "confusion_matrices.png"
LATENCY = "latency.png"


def plot(
    comparison: Mapping[str, Any], curves: Mapping[str, Mapping[str, list[float]]], folder: Path
) -> list[str]:
    """Draw the report's figures into ``folder``; the file names drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(comparison["frameworks"])
    drawn = []
    if any(curves.get(name) for name in names):
        keys = sorted({key for name in names for key in curves.get(name, {})})
        figure, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
        for axis, key in zip(axes[0], keys, strict=True):
            for name in names:
                values = curves.get(name, {}).get(key)
                if values:
                    axis.plot(range(1, len(values) + 1), values, marker=".", label=name)
            axis.set_title(key)
            axis.set_xlabel("epoch")
            axis.legend()
        figure.suptitle("Best trial of each framework")
        figure.tight_layout()
        figure.savefig(folder / LEARNING, dpi=100)
        plt.close(figure)
        drawn.append(LEARNING)
    if comparison["task"] == "classification":
        figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
        for axis, name in zip(axes[0], names, strict=True):
            matrix = comparison["frameworks"][name]["test"]["confusion_matrix"]
            axis.imshow(matrix, cmap="Blues")
            for row, values in enumerate(matrix):
                for column, count in enumerate(values):
                    if count:
                        axis.text(column, row, str(count), ha="center", va="center", fontsize=7)
            axis.set_title(f"{name}: confusion (rows: true)")
            axis.set_xlabel("predicted class")
            axis.set_ylabel("true class")
        figure.tight_layout()
        figure.savefig(folder / CONFUSION, dpi=100)
        plt.close(figure)
        drawn.append(CONFUSION)
    figure, axes = plt.subplots(1, 2, figsize=(max(9, 1.5 * len(names) * 2), 3.5))
    for axis, key, field, title in (
        (axes[0], "batch_1", "p50_ms", "batch-1 p50 latency (ms)"),
        (axes[1], "batch_256", "p50_ms", "batch-256 p50 latency (ms)"),
    ):
        timed = [comparison["frameworks"][name]["latency"][key] for name in names]
        values = [one[field] for one in timed]
        # Error bars: the bootstrap interval over rounds, where the comparison has one.
        spans = [one.get(f"{field}_interval") or [one[field]] * 2 for one in timed]
        errors = [
            [max(0.0, value - low) for value, (low, _) in zip(values, spans, strict=True)],
            [max(0.0, high - value) for value, (_, high) in zip(values, spans, strict=True)],
        ]
        axis.bar(names, values, yerr=errors, capsize=4, color=[f"C{i}" for i in range(len(names))])
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(folder / LATENCY, dpi=100)
    plt.close(figure)
    drawn.append(LATENCY)
    return drawn


def markdown(comparison: Mapping[str, Any], figures: list[str], figure_dir: str) -> str:
    """The comparison as a Markdown report."""
    names = sorted(comparison["frameworks"])
    frameworks = comparison["frameworks"]
    metric = comparison["metric"]
    difference = comparison["difference"]
    lines = [
        f"# bakeoff: {comparison['dataset']} ({comparison['task']})",
        "",
        *verdict(comparison),
        "",
        "## Evidence",
        "",
        f"**Winner: {comparison['winner']}** — {comparison['reason']}.",
        "",
        f"Scored on the same {comparison['test_rows']} test rows with the same metric code; "
        f"inference timed with {comparison['threads']} thread(s).",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    test_keys = [
        k
        for k in frameworks[names[0]]["test"]
        if not isinstance(frameworks[names[0]]["test"][k], list)
    ]

    def row(label: str, values: list[Any]) -> None:
        lines.append(f"| {label} | " + " | ".join(_cell(v) for v in values) + " |")

    for key in test_keys:
        row(f"test/{key} (shipped model)", [frameworks[n]["test"][key] for n in names])
    row(
        f"{metric} over training seeds: mean, sd, min to max",
        [_over_seeds(frameworks[n]["seeds"]) for n in names],
    )
    latency = {n: frameworks[n]["latency"] for n in names}
    row("batch-1 p50 latency (ms)", [_timed(latency[n]["batch_1"], "p50_ms") for n in names])
    row("batch-1 p99 latency (ms)", [_timed(latency[n]["batch_1"], "p99_ms") for n in names])
    row(
        "batch-256 examples/s",
        [_timed(latency[n]["batch_256"], "examples_per_s", ",.0f") for n in names],
    )
    row("model size (bytes)", [frameworks[n]["size_bytes"] for n in names])
    row("parameters", [frameworks[n]["parameters"] for n in names])
    row(
        "best trial / its epochs",
        [f"{frameworks[n]['best_trial']} / {frameworks[n]['best_epochs']}" for n in names],
    )
    row(
        "trials run / pruned / failed",
        [
            "{run} / {pruned} / {failed}".format(**(frameworks[n]["trials"] or {}))
            if frameworks[n]["trials"]
            else None
            for n in names
        ],
    )
    lines += _latency_note(comparison)
    if len({frameworks[n]["parameters"] for n in names}) > 1:
        lines += [
            "",
            "Each column is that framework's own best model: the architectures differ, so "
            "latency and size compare models, not frameworks; the training cost below "
            "compares frameworks on one architecture.",
        ]
    lo, hi = difference["interval"]
    lines += [
        "",
        "## Is the difference real?",
        "",
        f"{metric}, {difference['a']} minus {difference['b']}"
        + (" (the winner and the runner-up)" if len(names) > 2 else "")
        + f": {difference['value']:+.4f}, "
        f"as a mean over training seeds ({', '.join(f'{k} {v}' for k, v in difference['seeds'].items())}): "
        f"{difference['level']:.0%} interval [{lo:+.4f}, {hi:+.4f}] by the "
        f"{difference['method']}, {difference['resamples']} resamples: "
        + (
            "the interval excludes zero."
            if difference["significant"]
            else "the interval includes zero (a tie)."
        ),
    ]
    if "mcnemar" in difference:
        test = difference["mcnemar"]
        lines += [
            "",
            f"McNemar's test of the shipped models ({'exact binomial' if test['exact'] else 'chi-square, continuity-corrected'}): "
            f"{test['only_a_right']} rows only {difference['a']} got right, "
            f"{test['only_b_right']} only {difference['b']}; p = {test['p_value']:.4g}.",
        ]
    if len(names) > 2:
        lines += _against_leader(comparison)
    if "costs" in comparison:
        lines += ["", *costs.markdown(comparison["costs"])]
    lines += ["", "## Fairness", ""]
    if comparison["fairness"]:
        lines += [f"- Broken: {line}" for line in comparison["fairness"]]
    else:
        lines.append("No fairness rule of DESIGN.md was visibly broken by this run.")
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{name}]({figure_dir}/{name})" for name in figures]
    return "\n".join(lines) + "\n"


def verdict(comparison: Mapping[str, Any]) -> list[str]:
    """The short verdict the report opens with: quality, training speed, what ships, the champion."""
    frameworks = comparison["frameworks"]
    metric = comparison["metric"]
    leader = comparison["leader"]
    over = {name: frameworks[name]["seeds"] for name in sorted(frameworks)}
    counts = sorted({one["count"] for one in over.values()})
    seeds = f"{'/'.join(map(str, counts))} training seed{'s' if counts != [1] else ''}"
    figures = ", ".join(
        f"{name} {one['mean']:.4f}" + (f" ± {one['std']:.4f}" if one["std"] is not None else "")
        for name, one in over.items()
    )
    tied = comparison["tied_with_leader"]
    if len(tied) > 1:
        quality = f"tie on {metric} across {seeds} ({figures}; mean ± sd over seeds)"
    else:
        quality = f"{leader} is better on {metric} across {seeds} ({figures}; mean ± sd over seeds)"
    level = next(iter(comparison["differences"].values()))["level"]
    intervals = "; ".join(
        f"{name} - {leader} [{one['interval'][0]:+.4f}, {one['interval'][1]:+.4f}]"
        for name, one in sorted(comparison["differences"].items())
    )
    lines = [
        "## Verdict",
        "",
        f"- **Quality**: {quality}; {level:.0%} interval over seeds and test rows: {intervals}.",
    ]
    lines += [f"- **Training speed**: {line}" for line in _speed(comparison)]
    lines += [
        f"- **Ships**: {comparison['winner']} (decided by {comparison['decided_by']}; "
        "the rule and its evidence are below).",
        CHAMPION_PENDING,
    ]
    return lines


def _speed(comparison: Mapping[str, Any]) -> list[str]:
    """Each configuration's training-speed ratio, stated only where its interval excludes 1."""
    throughput = (comparison.get("costs") or {}).get("training_throughput")
    if not throughput:
        return ["not measured (no refit figures)."]
    lines = []
    for config, entry in throughput["by_configuration"].items():
        for ratio in entry["ratios"]:
            low, high = ratio["interval"]
            faster, slower, value = ratio["framework"], ratio["over"], ratio["ratio"]
            if value < 1:
                faster, slower = slower, faster
                value, low, high = 1 / value, *(None if x is None else 1 / x for x in (high, low))
            span = "no interval (one repeat)" if low is None else f"[{low:.2f}, {high:.2f}]"
            shown = low is not None and low > 1
            lines.append(
                f"{faster} trains {value:.2f}x as fast as {slower} on {config}'s configuration, "
                f"{span}" + ("" if shown else ": not shown to differ") + "."
            )
    return lines


def _against_leader(comparison: Mapping[str, Any]) -> list[str]:
    """Each framework against the leader: the same interval and test, and whether it ties."""
    leader = comparison["leader"]
    lines = [
        "",
        f"### Each framework against the leader ({leader})",
        "",
        f"| framework | {comparison['metric']} minus {leader} | interval | McNemar p | tied |",
        "|---|---|---|---|---|",
    ]
    for name, difference in sorted(comparison["differences"].items()):
        lo, hi = difference["interval"]
        p_value = difference["mcnemar"]["p_value"] if "mcnemar" in difference else None
        lines.append(
            f"| {name} | {difference['value']:+.4f} | [{lo:+.4f}, {hi:+.4f}] | "
            f"{_cell(p_value)} | {'yes' if name in comparison['tied_with_leader'] else 'no'} |"
        )
    return lines


def _over_seeds(seeds: Mapping[str, Any]) -> str:
    spread = "n/a" if seeds["std"] is None else f"{seeds['std']:.4f}"
    return (
        f"{seeds['mean']:.4f}, {spread}, {seeds['min']:.4f} to {seeds['max']:.4f} "
        f"({seeds['count']}, {seeds['source']})"
    )


def _timed(figure: Mapping[str, Any], field: str, spec: str = ".3f") -> str:
    """A latency or throughput figure with its interval in brackets, where it has one."""
    interval = figure.get(f"{field}_interval")
    if interval is None:
        return _cell(figure[field])
    low, high = interval
    return f"{figure[field]:{spec}} [{low:{spec}}, {high:{spec}}]"


def _latency_note(comparison: Mapping[str, Any]) -> list[str]:
    """How latency was timed, and the two fastest frameworks' paired batch-1 ratio."""
    ratio = comparison.get("latency_ratio")
    if not ratio:
        return []
    lo, hi = ratio["interval"]
    return [
        "",
        f"Latency and throughput: interleaved timing, {ratio['rounds']} rounds; in brackets "
        f"the {ratio['level']:.0%} bootstrap interval over rounds. Batch-1 p50 of "
        f"{ratio['slower']} over {ratio['faster']} (paired, the same rounds): "
        f"{ratio['ratio']:.3f} [{lo:.3f}, {hi:.3f}].",
    ]


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
