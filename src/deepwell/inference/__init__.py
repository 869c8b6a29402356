"""Prediction outside training: the network forward pass (network.py) and the one prediction path
(predict.py) that models, the CLI, the MLflow pyfunc model and servers share."""
