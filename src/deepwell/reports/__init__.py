"""One self-contained HTML report per run folder (report.html): opens offline, images inline."""

from deepwell.reports.build import build_report

__all__ = ["build_report"]
