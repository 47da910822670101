"""Inference runtime: ONNX Runtime sessions, tiled inference and the standard model transform."""
