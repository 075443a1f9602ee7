"""The SafeEdit evaluation (METHODS §1.5, §1.6): metrics, runner and report."""
