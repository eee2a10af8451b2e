"""Pre-training, the training loop and its callbacks, evaluators and tasks, the pipeline, metrics and logging."""
