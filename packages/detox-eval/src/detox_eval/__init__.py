"""detox-eval: the method registry, RealToxicityPrompts and SafeEdit evaluation runs and reports."""
