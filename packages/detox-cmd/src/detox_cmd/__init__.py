"""detox-cmd: CMD data synthesis (Segment-CNN spans, masking, rephrasing, chains) and training."""
