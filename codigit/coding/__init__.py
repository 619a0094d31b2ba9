"""Coding rounds for researchers: a codebook, independent coders in a researchers-only workspace, agreement,
reconciliation, and exports for qualitative tools."""
