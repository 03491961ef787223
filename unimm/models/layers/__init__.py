"""Building blocks shared by several registered components (not registered themselves)."""
