"""Exporting a trained model for runtimes without PyTorch: `onnx.py` (the network as one ONNX graph, checked
against PyTorch before the export succeeds)."""
