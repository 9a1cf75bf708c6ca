"""Reports of finished runs: an HTML page for one run or a comparison, and the comparison as Markdown."""

from dmlkit.report.groups import Group, Stat, group_runs, stat
from dmlkit.report.page import render_html, render_markdown, write_report
from dmlkit.report.records import RunRecord, find_runs, read_run

__all__ = [
    "Group",
    "RunRecord",
    "Stat",
    "find_runs",
    "group_runs",
    "read_run",
    "render_html",
    "render_markdown",
    "stat",
    "write_report",
]
