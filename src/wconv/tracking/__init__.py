"""What a run leaves behind: atomic records (JSON, JSON lines, checkpoints) and the W&B logger."""
