"""Frame sampling, clip transforms, datasets and synthetic data."""
