"""Training: the loop (single process and torch.distributed), tasks, checkpoints, metrics and plots."""
