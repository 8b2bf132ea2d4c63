"""The suite run: session, checks (measure, record, judge), deployment matrix, stored baseline."""
