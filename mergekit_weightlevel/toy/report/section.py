"""A report section (one table per paper) and the number formats every section uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Section:
    title: str
    paper: str
    table: list[list[str]]
    reading: list[str]
    extra: str = ""
    #: One sentence for the closing summary (default: the last reading sentence).
    verdict: str = ""
    #: Which paper (``FIRST_FAMILY`` in ``render``): family, regime, paramdelta, shadow_ft, ...
    key: str = ""

    def markdown(self) -> str:
        header, *rows = self.table
        lines = [f"## {self.title}", "", f"**Paper:** {self.paper}", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        if self.extra:
            lines += ["", self.extra]
        lines += ["", "**Reading.** " + " ".join(self.reading), ""]
        return "\n".join(lines)


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
