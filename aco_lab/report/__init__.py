"""Reports: metrics files, report.md/html, plots, the monitoring dashboard, comparisons."""
