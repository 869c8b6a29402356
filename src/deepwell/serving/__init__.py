"""Serving a trained model: the Open Inference Protocol (KServe V2) over REST, `/predict` and `/invocations`
(`app.py`), the protocol's tensors (`protocol.py`) and the model's input and output schema (`schema.py`)."""
