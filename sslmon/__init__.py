"""sslmon: label-free monitoring of self-supervised encoders."""

__version__ = "0.2.0"
