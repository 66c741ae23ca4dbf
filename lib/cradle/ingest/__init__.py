"""Ingestion: landing files -> bronze (as delivered, with lineage) -> silver (typed,
normalised, de-duplicated, personal data protected), with a quarantine for bad rows,
a manifest for exactly-once loading and data-health metrics."""
