"""Factors: Alpha158 and its label, processors, point-in-time universes."""
