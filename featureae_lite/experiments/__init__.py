"""Experiments over the models: one evaluation protocol, train-or-load checkpoints, the benchmark,
learning curves, the real-data transfer test and hyper-parameter selection on validation data."""
