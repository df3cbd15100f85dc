"""What every training stage shares: device and mixed precision, seeding, checkpoints, the epoch loop with
early stopping, the in-memory image bank, and model registration in MLflow."""
