"""Rate limits: what each caller may send in a minute (policy) and the counting of it (counters)."""
