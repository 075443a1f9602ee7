"""The CMD recipe: split the prompts, synthesize chains, train the adapter, evaluate, report."""
