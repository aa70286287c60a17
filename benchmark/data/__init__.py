"""Datasets, the synthetic dataset, clip samplers, view generators and augmentations."""
