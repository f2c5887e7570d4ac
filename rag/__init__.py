"""ragops shared core: settings, types, encoders, store, retrieval, answers, reports."""
