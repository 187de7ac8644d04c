"""Replay: flat transitions for the state agent, episodes of uint8 frames for the pixel agent."""
