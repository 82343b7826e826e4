"""Readers and writers: datasets, embedding files, results files, Z3 files, milestones, option files, the results cache."""
