"""The synthetic reasoning world: problems, exact solutions and probes, splits, and the exact teacher."""
