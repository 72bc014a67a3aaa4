"""Level-triggered reconcilers, one per kind, sharing the mechanics in this package."""
