"""Operations around the query path: the ops database, the document catalog, ingestion jobs,
schedules, expiry, the query log, feedback, API keys, reports and Prometheus metrics."""
