"""One result format for every benchmark: benchmarks/results/<benchmark>.json."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "processor": platform.machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        # Other work on the machine while measuring (the 1, 5 and 15 minute load averages).
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


@dataclass(frozen=True)
class Goal:
    """`ratio` compared with `target`: met when ratio >= target ('at_least') or <= ('at_most')."""

    ratio: str
    target: float
    direction: str = "at_least"

    def met(self, ratios: dict[str, float]) -> bool:
        value = ratios[self.ratio]
        return value >= self.target if self.direction == "at_least" else value <= self.target


@dataclass
class BenchmarkResult:
    benchmark: str
    figures: dict[str, Any]
    ratios: dict[str, float]
    goals: list[Goal]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "machine": machine(),
            "figures": self.figures,
            "ratios": {name: round(value, 3) for name, value in self.ratios.items()},
            "goals": {
                goal.ratio: {
                    "target": goal.target,
                    "direction": goal.direction,
                    "value": round(self.ratios[goal.ratio], 3),
                    "met": goal.met(self.ratios),
                }
                for goal in self.goals
            },
            "notes": self.notes,
        }

    def write(self, directory: Path = RESULTS_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.benchmark}.json"
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        return path

    def summary_lines(self) -> list[str]:
        lines = [f"{self.benchmark}:"]
        for goal in self.goals:
            value = self.ratios[goal.ratio]
            sign = ">=" if goal.direction == "at_least" else "<="
            verdict = "met" if goal.met(self.ratios) else "NOT met"
            lines.append(f"  {goal.ratio} = {value:.2f} (goal {sign} {goal.target}) {verdict}")
        return lines


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    samples = [measure() for _ in range(runs)]
    return statistics.median(samples), samples


def python_info() -> str:
    return sys.version.split()[0]
