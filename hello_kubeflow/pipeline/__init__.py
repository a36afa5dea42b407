"""The KFP v2 pipeline: its definition, the steps' bodies, local runs and their log."""
