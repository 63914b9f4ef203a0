"""Training: open_clip wrapper (run by torchrun), fast data paths, text sampler, multi-node set-up, MACs."""
