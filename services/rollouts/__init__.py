"""Fleet rollouts: new layer revisions reaching every tenant in waves, and what is behind."""
