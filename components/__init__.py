"""bakeoff's pipeline components: one package per DVC stage, each a pure core and a thin CLI."""
