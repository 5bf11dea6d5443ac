"""The cost figures of the comparison, each measuring one thing and named for it.

- training throughput: the refit stage's, on one architecture at a time
  (``reports/refit.json``, :mod:`components.refit.core`);
- tuning: the study's wall time and the epochs its trials trained;
- fixed cost: the training stage's wall time outside the study (start-up,
  imports, data loading, for TensorFlow the TFX components), with each
  component's seconds as recorded;
- peak memory: of the training stage's process, and of the refit's fits;
- the runtime settings each framework ran with, declared and as it reported them.

Inference latency is :mod:`components.evaluate.latency`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.contracts import TrainingMetrics


def gather(
    training: Mapping[str, TrainingMetrics], refit: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``costs`` section of the comparison."""
    frameworks = {}
    for name, metrics in training.items():
        refit_peak = (refit or {}).get("peak_memory_mb", {}).get(metrics.framework)
        frameworks[name] = {
            "tuning_seconds": round(metrics.training_seconds, 2),
            "trial_epochs": metrics.trial_epochs,
            "trials": dict(metrics.trials),
            "stage_seconds": metrics.stage_seconds,
            "fixed_seconds": round(max(0.0, metrics.stage_seconds - metrics.training_seconds), 2)
            if metrics.stage_seconds
            else None,
            "component_seconds": dict(metrics.component_seconds),
            "peak_memory_mb": {"training_stage": metrics.peak_memory_mb, "refit": refit_peak},
            "runtime": dict(metrics.runtime),
        }
    costs: dict[str, Any] = {"frameworks": frameworks}
    if refit:
        costs["training_throughput"] = {
            "method": refit["method"],
            "machine": refit["machine"],
            "threads": refit["params"]["threads"],
            "by_configuration": refit["summary"],
            "runtime": refit["runtime"],
        }
    return costs


def markdown(costs: Mapping[str, Any]) -> list[str]:
    """The report's cost and runtime sections."""
    lines = ["## Training cost", ""]
    throughput = costs.get("training_throughput")
    if throughput:
        machine = throughput["machine"]
        lines += [
            f"Measured after both studies on {machine['cpu']} "
            f"({', '.join(machine.get('vector_extensions', [])) or 'no AVX2/AVX-512'}), "
            f"{throughput['threads']} thread(s) per fit. Method: {throughput['method']}.",
            "",
            "| configuration (whose best) | architecture | parameters | batch | framework "
            "| examples/s [interval] | warm-up (s) |",
            "|---|---|---:|---:|---|---|---:|",
        ]
        for config, entry in throughput["by_configuration"].items():
            shape = entry["configuration"]
            for framework, rate in entry["rates"].items():
                low, high = rate["interval"]
                lines.append(
                    f"| {config} | {shape['architecture']} depth {shape['depth']} width "
                    f"{shape['width']} | {shape['parameters']:,} | {shape['batch_size']} "
                    f"| {framework} | {rate['examples_per_s']:,.0f} [{_number(low)}, "
                    f"{_number(high)}] | {rate['warm_up_s']:.2f} |"
                )
        lines.append("")
        for config, entry in throughput["by_configuration"].items():
            for ratio in entry["ratios"]:
                low, high = ratio["interval"]
                lines.append(
                    f"- On {config}'s configuration, {ratio['framework']} trains at "
                    f"{ratio['ratio']:.2f}x {ratio['over']}'s examples/s "
                    f"[{_number(low, 2)}, {_number(high, 2)}] ({ratio['pairs']} paired repeats)."
                )
        lines.append("")
    else:
        lines += ["No refit figures: the training throughput was not measured.", ""]
    frameworks = costs["frameworks"]
    names = list(frameworks)
    lines += [
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        _row("tuning wall time (s)", [frameworks[n]["tuning_seconds"] for n in names]),
        _row("epochs trained by all trials", [frameworks[n]["trial_epochs"] for n in names]),
        _row(
            "training stage outside the study (s): start-up, data, pipeline components, test, save",
            [frameworks[n]["fixed_seconds"] for n in names],
        ),
        _row(
            "peak memory, training stage (MiB)",
            [frameworks[n]["peak_memory_mb"]["training_stage"] for n in names],
        ),
        _row("peak memory, refit (MiB)", [frameworks[n]["peak_memory_mb"]["refit"] for n in names]),
        "",
    ]
    for name in names:
        components = frameworks[name]["component_seconds"]
        if components:
            listed = ", ".join(f"{key} {value:.1f}" for key, value in components.items())
            lines.append(f"- {name}'s stage, seconds per component: {listed}.")
    lines += [
        "",
        "## Runtime settings",
        "",
        "What each setting is worth on a machine: `benchmarks/framework_settings.py` "
        "(both frameworks under their defaults, oneDNN off, these settings and compiling; "
        "results in `benchmarks/results/framework_settings.json`, with the CPU they ran on). "
        "Every serving format's batch-1 p50/p99 and batch-256 throughput, with intervals: "
        "`reports/serving_bench.json` (the export stage).",
        "",
    ]
    for name in names:
        runtime = frameworks[name]["runtime"]
        declared = runtime.get("declared", {})
        applied = runtime.get("applied", runtime)
        lines.append(
            f"- **{name}**: declared "
            + ", ".join(f"{key} {value}" for key, value in declared.items())
            + "; as the framework reports it: "
            + ", ".join(f"{key} {value}" for key, value in applied.items())
            + "."
        )
    lines.append("")
    return lines


def _row(label: str, values: list[Any]) -> str:
    return f"| {label} | " + " | ".join(_number(value) for value in values) + " |"


def _number(value: Any, digits: int = 0) -> str:
    if value is None or value != value:  # missing, or NaN (one repeat: no interval)
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if digits or abs(value) >= 10 else f"{value:.2f}"
    return str(value)
