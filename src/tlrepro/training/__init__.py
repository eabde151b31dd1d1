"""Running one job: assembling data, model and method, the trainer, selection."""
