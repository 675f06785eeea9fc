"""ONNX export: the one-step graph, int8, safetensors, and the self-describing folder."""
