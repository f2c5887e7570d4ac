"""The lab: training data builders, recipes, trainers, export and sweeps for the models that ship
in `rag/` (not part of the product's wheel)."""
