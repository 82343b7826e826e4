"""Self-supervised training (SimCLR, MoCo-v2, SimSiam) that writes milestones; apart from the scoring core."""
