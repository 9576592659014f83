"""Reporting: events folded into the JSON report (events, fold, writer, spool, schema, files, redact), the
typed results every consumer reads (model), and the consumers: JUnit properties, tiers, the terminal
table, the HTML page (html, html_case, charts) and baselines (baseline, regression)."""
