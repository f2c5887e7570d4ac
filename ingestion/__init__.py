"""Ingestion: load, chunk by meaning, tag, embed, write; jobs and the scheduler."""
