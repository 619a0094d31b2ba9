"""Versioned releases: policy and consent applied to a snapshot, written as a content-addressed HF dataset."""
