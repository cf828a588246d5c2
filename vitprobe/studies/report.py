"""The findings table as markdown: one row per finding, one line per part, its per-seed
values, interval and verdict (``findings.Finding``)."""

from __future__ import annotations

from vitprobe import results

from .findings import NOT_MEASURED, Finding


def markdown(rows: list[Finding], verdicts: bool = True) -> str:
    """The findings table, one line per part. ``verdicts=False`` (the smoke preset): a
    pipeline check, the verdict column says so."""
    cells = []
    for r in rows:
        lines = [(f"{p.text()}: {p.verdict if p.votes else 'shown'}" if len(r.parts) > 1
                  and verdicts else p.text()) for p in r.parts]
        if r.note:
            lines.append(r.note)
        n = len({k for p in r.parts for k in p.seeds})
        if r.verdict == NOT_MEASURED:
            v = NOT_MEASURED
        elif verdicts:
            v = f"**{r.verdict}**"
        else:
            v = "pipeline check — no verdicts"
        cells.append([r.id, r.claim, "<br>".join(lines), str(n), v])
    return results_table(cells)


def results_table(cells: list[list[str]]) -> str:
    return results.markdown_table(
        ["#", "the paper's claim", "statistic = mean over seeds [95 % t interval]", "n (seeds)",
         "verdict"], cells)
