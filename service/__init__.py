"""The composition root: the one place that reads `Settings` and wires the store, encoders,
models, catalog and ingestor (`Services`), and hosts the scheduler and ingestion workers.
`rag/` and `ingestion/` receive parts from here and never import it."""

from service.container import Services, configure

__all__ = ["Services", "configure"]
