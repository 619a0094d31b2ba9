"""The corpus side of text contributions: preprocessing (`prepare`, `dedup`) and a versioned corpus release with
its contribution log (`release`, `card`, `tokens`)."""
