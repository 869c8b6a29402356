"""Exporting a trained model for runtimes without PyTorch: `onnx.py` (the network as one ONNX graph, checked
against PyTorch), `encoders.py` (frozen pretrained encoders' own graphs), `quantize.py` (int8 with onnxruntime's
tools), `rows.py` (the held-out and calibration rows an export is checked and calibrated on) and `folder.py`
(`deepwell export`: the folder `deepwell.edge` runs)."""
