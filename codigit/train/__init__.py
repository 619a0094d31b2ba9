"""Fine-tuning: TRL SFT recipes, the Llama-3.1 chat format, provenance and metrics (imports torch: load lazily)."""
