"""Shipped ONNX weights and their model cards (JSON). Data only."""
