"""Reporting: the event log and JSON report, the spool, redaction, JUnit properties, tiers, the terminal
table, the HTML report and baselines."""
