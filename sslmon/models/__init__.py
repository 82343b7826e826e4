"""Encoders: the architecture registry, checkpoint and torchvision sources, the embedding engine."""
