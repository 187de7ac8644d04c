"""Learned models: the dynamics ensemble (state path) and the RSSM world model (pixel path)."""
