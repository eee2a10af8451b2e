"""Pre-training, the adversarial loop, callbacks, metrics and logging."""
