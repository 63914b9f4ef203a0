"""Training: the launch of a run (command, export, summary), open_clip wrapper (run by torchrun), fast data paths,
text sampler, multi-node set-up, MACs."""
