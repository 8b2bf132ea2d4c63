"""The slimbench benchmark suite (a package, so its module names never clash with tests/ in one pytest run)."""
