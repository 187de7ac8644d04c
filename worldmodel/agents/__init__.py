"""Training loops: ``state_agent`` (ensemble MPC from states) and ``pixel_agent`` (RSSM + latent CEM)."""
