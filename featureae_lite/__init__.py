"""featureae_lite: unsupervised anomaly localisation in brain MRI, from l1 residuals to
Structural Feature-Autoencoders. See the notebooks for the guided tour."""

__version__ = "0.1.0"
