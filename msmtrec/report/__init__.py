"""Rendering results for people: the run's results table and learning curves, the bench's files
and the AutoIFS flow report. Nothing here computes a metric; it formats what the library computed."""

from msmtrec.report.bench_files import OUTPUT_FILES, bench_markdown, write_bench
from msmtrec.report.curves import plot_learning_curves
from msmtrec.report.flows import format_flow_report, plot_flow_selection
from msmtrec.report.results import results_table

__all__ = ["results_table", "plot_learning_curves", "OUTPUT_FILES", "bench_markdown", "write_bench", "format_flow_report",
           "plot_flow_selection"]
