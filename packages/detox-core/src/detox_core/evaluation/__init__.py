"""The RealToxicityPrompts evaluation, method-independent parts: run settings and manifest,
the generations store, report aggregation (bootstrap, paired comparison), plots and merging."""
