"""The core every layer builds on: SSIM, metrics, frozen feature extractors, anomaly-map
post-processing, bootstrap intervals, devices, atomic file I/O, presets, plots and the package's
error type. Nothing here imports the data, models, experiments or course layers."""
