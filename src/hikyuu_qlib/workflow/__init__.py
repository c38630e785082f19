"""One-command workflows: a validated YAML config drives the whole research run."""
