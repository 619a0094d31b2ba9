"""The embedded Argilla server. Knows nothing of training or analysis (layers point one way)."""
