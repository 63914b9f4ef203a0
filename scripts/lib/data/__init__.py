"""Dataset building: perceptual-hash dedup and decontamination."""
