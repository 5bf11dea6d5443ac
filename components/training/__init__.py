"""What both trainers share, so the bake-off is fair: architecture spec, search space, tracking."""
