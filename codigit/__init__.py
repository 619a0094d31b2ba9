"""codigit: participatory instruction tuning, from a community's stories to a tuned model."""

__version__ = "0.1.0"
