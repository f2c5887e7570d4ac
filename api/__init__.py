"""HTTP API and CLI over rag/ and ingestion/."""
