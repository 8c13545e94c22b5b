"""Training: experiment config, optimisers and schedulers, checkpoints, DDP helpers, validation, the trainer."""
