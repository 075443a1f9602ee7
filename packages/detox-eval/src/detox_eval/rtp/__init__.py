"""The RealToxicityPrompts evaluation (METHODS §2.8): settings, runner, store, report, plots."""
