"""The export stage: the winner to every serving format its framework reaches, with parity checks."""
